# Reference numbers for GLMM inference (tests/test_glmm_inference.py):
# profile intervals and lme4's parametric bootstrap of glmer fits.
#
# Run from the repository root:
#     Rscript tests/lme4/glmer_inference_cases.R
# It writes tests/lme4/fixtures/glmer_inference.json.  A few minutes (two
# profiles, one 1000-replicate bootMer).
#
# Recorded, per case (cbpp binomial; Poisson with an offset on the simulated
# data of glmer_cases.R's poisson_offset case, read back from its fixture):
#   profile_<L>  confint(fit, method = "profile", oldNames = FALSE, level = L)
#   theta, beta, minus2logLik  the fit being profiled
# and for cbpp: bootMer(fit, FUN, nsim = 1000, use.u = FALSE) replicates of
# (sd, fixef) named as confint(oldNames = FALSE) names them, with percentile
# intervals.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(boot)
})
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "glmer_inference.json")
json_number_style(digits = "shortest", infinity = "string")

jci <- function(ci) {
  list(rownames = jstr(rownames(ci)), colnames = jstr(colnames(ci)),
       lower = jarr(ci[, 1]), upper = jarr(ci[, 2]))
}
quietly <- function(expr) suppressMessages(suppressWarnings(expr))

cases <- list(
  cbpp = list(dataset = "cbpp", family = binomial,
              formula = cbind(incidence, size - incidence) ~ period + (1 | herd)),
  poisson_offset = list(fixture = "glmer_poisson_offset.json", family = poisson,
                        formula = y ~ x + offset(log(t)) + (1 | g))
)

# the simulated data a glmer_cases.R fixture carries: numbers, and factors as levels + values
fixture_data <- function(file) {
  cols <- fromJSON(file.path(fixtures_dir, file), simplifyVector = TRUE)$data
  as.data.frame(lapply(cols, function(v) if (is.list(v)) factor(v$values, levels = v$levels) else v))
}

fits <- list()
out_cases <- list()
for (nm in names(cases)) {
  case <- cases[[nm]]
  message("profile ", nm)
  d <- if (is.null(case$dataset)) fixture_data(case$fixture) else read_dataset(case$dataset)
  fit <- quietly(glmer(case$formula, data = d, family = case$family))
  fits[[nm]] <- fit
  t0 <- proc.time()[["elapsed"]]
  prof <- quietly(profile(fit, signames = FALSE))
  secs <- proc.time()[["elapsed"]] - t0
  out_cases[[nm]] <- list(
    formula = paste(deparse(case$formula), collapse = ""),
    theta = jarr(getME(fit, "theta")), beta = jarr(fixef(fit)),
    minus2logLik = jnum(-2 * as.numeric(logLik(fit))),
    profile_seconds = jnum(secs),
    profile_95 = jci(quietly(confint(prof, level = 0.95))),
    profile_90 = jci(quietly(confint(prof, level = 0.90)))
  )
}

# lme4's parametric bootstrap of the cbpp fit, for a Monte-Carlo comparison
fit <- fits[["cbpp"]]
vn <- lme4:::tnames(fit, old = FALSE, prefix = c("sd", "cor"))
fun <- function(x) c(setNames(as.vector(lme4:::Cv_to_Sv(x@theta, n = lengths(x@cnms))), vn), fixef(x))
set.seed(20240612)
t0 <- proc.time()[["elapsed"]]
bb <- quietly(bootMer(fit, FUN = fun, nsim = 1000, use.u = FALSE, type = "parametric"))
secs <- proc.time()[["elapsed"]] - t0
boot_ref <- list(cbpp = list(nsim = 1000L, seconds = jnum(secs), names = jstr(names(bb$t0)),
                             t0 = jarr(bb$t0), perc_95 = jci(confint(bb, level = 0.95, type = "perc")),
                             t = lapply(seq_len(ncol(bb$t)), function(j) jarr(bb$t[, j]))))

fixture <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  generated_by = "tests/lme4/glmer_inference_cases.R",
  cases = out_cases,
  bootmer = boot_ref
)
write_fixture(fixture, out_file)
message("wrote ", out_file)
