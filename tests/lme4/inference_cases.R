# Reference numbers for mixedfit.inference (profile, Wald and bootstrap
# intervals; information-matrix covariance of the variance parameters),
# produced by lme4 itself.
#
# Run from the repository root:
#     Rscript tests/lme4/inference_cases.R
# It writes tests/lme4/fixtures/inference_profile.json.  It takes a few
# minutes (two profiles per case and two 1000-replicate bootstraps).
#
# The data are read back from mixedfit/datasets/data/*.csv.gz + *.json, the
# very files Python loads, so both sides fit identical numbers.  Numbers are
# written with the shortest decimal that reads back as R's double (format_num
# of common.R, as in make_fixtures.R); NA and NaN are written as null, +-Inf
# as the strings "Inf"/"-Inf" (interval bounds keep their sign of infinity).
#
# What is recorded, per case:
#   profile_<L>  confint(fit, method = "profile", oldNames = FALSE, level = L)
#   wald_<L>     confint(fit, method = "Wald",    oldNames = FALSE, level = L)
#   vcov_varpar_theta   lmerTest's vcov_varpar: 2 * (Hessian of the deviance
#                       (ML) or REML criterion in (theta, sigma))^-1, Hessian by
#                       numDeriv::hessian (Richardson), eigen pseudo-inverse
#   vcov_varpar_sd/var  the same with the deviance written as a function of
#                       (sd, cor, sigma) or (var, cov, sigma^2)
# plus, once: as.data.frame(profile(fit, signames = FALSE)) for sleepstudy ML,
# lme4:::format.perc labels for several levels, boot's perc/basic/norm
# interval arithmetic on a fixed vector, and bootMer() percentile intervals
# (nsim = 1000) with the replicates, for Dyestuff and sleepstudy (REML).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(lmerTest, exclude = "lmer")
  library(numDeriv)
  library(boot)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "inference_profile.json")
# interval bounds keep the sign of an infinity ("Inf" / "-Inf")
json_number_style(digits = "shortest", infinity = "string")

# an interval table: row names, column labels, lower and upper bounds
jci <- function(ci) {
  list(rownames = jstr(rownames(ci)), colnames = jstr(colnames(ci)),
       lower = jarr(ci[, 1]), upper = jarr(ci[, 2]))
}

quietly <- function(expr) suppressMessages(suppressWarnings(expr))

# ---------------------------------------------------------------------------
# the deviance in (theta, sigma), (sd, cor, sigma) or (var, cov, sigma^2)

vlist_of <- function(fit) lengths(fit@cnms)

varpar_at_opt <- function(fit, scale) {
  th <- getME(fit, "theta"); s <- sigma(fit); n <- vlist_of(fit)
  switch(scale,
         theta = unname(c(th, s)),
         sd = as.vector(lme4:::Cv_to_Sv(th, n = n, s = s)),
         var = as.vector(lme4:::Cv_to_Vv(th, n = n, s = s)))
}

dev_on_scale <- function(fit, scale) {
  devfun <- quietly(update(fit, devFunOnly = TRUE))
  reml <- isREML(fit); n <- vlist_of(fit)
  function(p) {
    k <- length(p)
    vp <- switch(scale,
                 theta = p,
                 sd = c(as.vector(lme4:::Sv_to_Cv(p, n = n, s = p[k])), p[k]),
                 var = c(as.vector(lme4:::Vv_to_Cv(p, n = n, s = sqrt(p[k]))), sqrt(p[k])))
    lmerTest:::devfun_vp(vp, devfun = devfun, reml = reml)
  }
}

# 2 * H^-1 with lmerTest's eigen pseudo-inverse (eigenvalues above 1e-8 kept)
vcov_varpar <- function(fit, scale) {
  out <- tryCatch({
    f <- dev_on_scale(fit, scale)
    h <- numDeriv::hessian(f, varpar_at_opt(fit, scale))
    e <- eigen(h, symmetric = TRUE)
    pos <- e$values > 1e-8
    2 * e$vectors[, pos, drop = FALSE] %*% diag(1 / e$values[pos], nrow = sum(pos)) %*%
      t(e$vectors[, pos, drop = FALSE])
  }, error = function(e) NULL)
  if (is.null(out) || any(!is.finite(out))) return(NULL)
  jrows(out)
}

# ---------------------------------------------------------------------------

# the models of these fixtures/<case>.json (fixture_cases of common.R)
cases <- cases_named("sleepstudy_reml", "sleepstudy_ml", "dyestuff_reml", "dyestuff_ml",
                     "dyestuff2", "penicillin")

levels_recorded <- c(0.95, 0.9)
fits <- list()
out_cases <- list()
for (cs in cases) {
  message("case ", cs$name)
  data <- read_dataset(cs$dataset)
  fit <- quietly(lme4::lmer(as.formula(cs$formula), data = data, REML = cs$reml))
  fits[[cs$name]] <- fit
  ml <- quietly(refitML(fit))
  rec <- list(
    dataset = cs$dataset, formula = cs$formula, reml = cs$reml,
    theta = jarr(getME(fit, "theta")), sigma = jnum(sigma(fit)),
    beta = jarr(fixef(fit)),
    ml_theta = jarr(getME(ml, "theta")), ml_deviance = jnum(deviance(ml)),
    varpar_names = jstr(c(lme4:::tnames(fit, old = FALSE, prefix = c("sd", "cor")), "sigma"))
  )
  for (lev in levels_recorded) {
    tag <- sprintf("%02d", round(100 * lev))
    t0 <- proc.time()[["elapsed"]]
    pci <- quietly(confint(fit, method = "profile", oldNames = FALSE, level = lev))
    if (lev == 0.95) rec$profile_seconds <- jnum(proc.time()[["elapsed"]] - t0)
    rec[[paste0("profile_", tag)]] <- jci(pci)
    rec[[paste0("wald_", tag)]] <- jci(confint(fit, method = "Wald", oldNames = FALSE, level = lev))
  }
  for (scale in c("theta", "sd", "var")) {
    rec[[paste0("vcov_varpar_", scale)]] <- vcov_varpar(fit, scale)
  }
  out_cases[[cs$name]] <- rec
}

# as.data.frame(profile) for one case: every point lme4 computed
message("profile frame")
pr <- quietly(profile(fits[["sleepstudy_ml"]], signames = FALSE))
prf <- as.data.frame(pr)
profile_frame <- list(case = "sleepstudy_ml", columns = jstr(names(prf)),
                      par = jstr(as.character(prf$.par)))
num_cols <- setdiff(names(prf), ".par")
profile_frame$values <- setNames(lapply(num_cols, function(nm) jarr(prf[[nm]])), num_cols)

# column labels as lme4 writes them
perc_levels <- c(0.5, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999, 0.9999, 0.683)
format_perc <- list(levels = jarr(perc_levels),
                    labels = lapply(perc_levels, function(l) {
                      a <- (1 - l) / 2
                      jstr(lme4:::format.perc(c(a, 1 - a), 3))
                    }))

# boot's interval arithmetic on fixed replicates (R = 999 gives integer
# order statistics at 0.95, R = 1000 needs boot's normal-scale interpolation)
boot_arith <- list()
for (R in c(999L, 1000L)) {
  tt <- qexp(((seq_len(R) * 7919L) %% (R + 1L)) / (R + 1))
  t0 <- 1.1
  per_level <- list()
  for (conf in c(0.95, 0.9, 0.8)) {
    per_level[[sprintf("%g", conf)]] <- list(
      perc = jarr(boot:::perc.ci(tt, conf)[1, 4:5]),
      basic = jarr(boot:::basic.ci(t0, tt, conf)[1, 4:5]),
      norm = jarr(boot:::norm.ci(t0 = t0, t = tt, conf = conf)[1, 2:3]))
  }
  boot_arith[[as.character(R)]] <- list(R = R, t0 = jnum(t0), multiplier = 7919L,
                                        levels = per_level)
}

# lme4's own parametric bootstrap, for a Monte-Carlo comparison
boot_ref <- list()
for (nm in c("dyestuff_reml", "sleepstudy_reml")) {
  message("bootMer ", nm)
  fit <- fits[[nm]]
  vn <- c(lme4:::tnames(fit, old = FALSE, prefix = c("sd", "cor")), "sigma")
  fun <- function(x) c(setNames(as.vector(lme4:::Cv_to_Sv(x@theta, n = lengths(x@cnms),
                                                            s = sigma(x))), vn), fixef(x))
  set.seed(20240611)
  t0 <- proc.time()[["elapsed"]]
  bb <- quietly(bootMer(fit, FUN = fun, nsim = 1000, use.u = FALSE, type = "parametric"))
  secs <- proc.time()[["elapsed"]] - t0
  perc <- confint(bb, level = 0.95, type = "perc")
  boot_ref[[nm]] <- list(nsim = 1000L, seconds = jnum(secs), names = jstr(names(bb$t0)),
                         t0 = jarr(bb$t0), perc_95 = jci(perc),
                         t = lapply(seq_len(ncol(bb$t)), function(j) jarr(bb$t[, j])))
}

fixture <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  generated_by = "tests/lme4/inference_cases.R",
  cases = out_cases,
  profile_frame = profile_frame,
  format_perc = format_perc,
  boot_arithmetic = boot_arith,
  bootmer = boot_ref
)
write_fixture(fixture, out_file)
message("wrote ", out_file)
