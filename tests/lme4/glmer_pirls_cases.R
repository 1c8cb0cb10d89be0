# glmer fits whose PIRLS needs step-halving (tests/test_glmm.py, test_step_halving_*).
#
# Run from the repository root:
#     Rscript tests/lme4/glmer_pirls_cases.R
#
# Writes tests/lme4/fixtures/glmer_pirls_<case>.json: the simulated data, the
# model, glmer's deviance, -2 logLik, theta, beta, SE, its first-stage (nAGQ = 0)
# theta and how often its PIRLS entered step-halving (lme4's C++ prints
# "pwrssUpdate: Entering step halving loop" at verbose > 2; the count is from
# the whole fit, both stages, and is > 0 here by construction).  A Gamma
# response with the canonical inverse link: PIRLS is Fisher scoring there, not
# Newton's method, and its first steps from lme4's starting values overshoot.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

sim_gamma_inverse <- function() {
  set.seed(1)
  g <- factor(sprintf("g%02d", rep(1:20, each = 10)))
  x <- round(rnorm(200), 3)
  b <- rnorm(20, sd = 1)[as.integer(g)]
  y <- signif(rgamma(200, shape = 2, scale = exp(1 + x + b) / 2), 6)
  data.frame(y = y, x = x, g = g)
}

cases <- list(
  list(name = "gamma_inverse", sim = sim_gamma_inverse, formula = "y ~ x + (1 | g)",
       family = "Gamma", link = "inverse")
)

fit_case <- function(case) {
  d <- case$sim()
  fam <- get(case$family)(link = case$link)
  f <- as.formula(case$formula)
  trace <- capture.output(res <- with_conditions(glmer(f, data = d, family = fam, verbose = 3L)))
  m <- res$value
  stage1 <- suppressMessages(glmer(f, data = d, family = fam, nAGQ = 0L))
  list(
    name = case$name, family = case$family, link = case$link, nAGQ = 1L,
    formula = case$formula, data_name = "dat",
    lme4_version = as.character(packageVersion("lme4")), r_version = R.version.string,
    step_halvings = sum(grepl("Entering step halving loop", trace, fixed = TRUE)),
    deviance = jnum(deviance(m)), minus2logLik = jnum(-2 * as.numeric(logLik(m))),
    fval = jnum(m@devcomp$cmp[["dev"]]),
    beta = jobj(fixef(m)), se = jobj(sqrt(diag(as.matrix(vcov(m))))),
    theta = jobj(getME(m, "theta")), sigma = jnum(sigma(m)),
    stage1_theta = jobj(getME(stage1, "theta")),
    messages = jstr(res$messages), warnings = jstr(res$warnings),
    # the columns as tests/test_glmm.py's fixture_data reads them (a factor: levels and values)
    data = list(y = jarr(d$y), x = jarr(d$x),
                g = list(levels = jstr(levels(d$g)), values = jstr(as.character(d$g))))
  )
}

for (case in cases) {
  rec <- fit_case(case)
  if (rec$step_halvings == 0) stop(case$name, ": glmer's PIRLS did not step-halve")
  write_fixture(rec, file.path(fixtures_dir, paste0("glmer_pirls_", case$name, ".json")))
  cat(sprintf("%-16s -2logLik %s, %d step-halvings\n", case$name, unclass(rec$minus2logLik),
              rec$step_halvings))
}
