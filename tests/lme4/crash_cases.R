# lme4's answers on inputs that crashed mixedfit (issue 20, "Reliability").
#
# Run from the repository root:
#     Rscript tests/lme4/crash_cases.R
# writes tests/lme4/fixtures/crash_cases.json (about 5 s) with
#   profiles: singular random-slope fits (y ~ x + (x|g), ML, 12 groups of 8;
#             the data simulated here and written into the file) and lme4's
#             confint(fit, method = "profile", oldNames = FALSE) with its
#             warnings:
#               singular_slope  the correlation at -1: mixedfit's profile
#                               started NLopt a rounding error outside [-1, 1]
#                               (tests/inference/test_profile.py);
#               flat_ridge      profiling finds deviances 5e-9 below the fit's,
#                               where lme4 finishes;
#   errors:   the text of lme4's error on sleepstudy with weights
#             c(1e20, rep(1, 179)) (tests/test_model.py).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "crash_cases.json")
# interval bounds keep the sign of an infinity ("Inf" / "-Inf")
json_number_style(digits = "shortest", infinity = "string")

# 12 groups of 8 with a random intercept and no slope variance; y rounded to
# 3 decimals so that the data are written exactly.
simulated_slopes <- function(seed) {
  set.seed(seed)
  g <- factor(rep(sprintf("g%02d", 1:12), each = 8))
  x <- rep(0:7, 12)
  y <- round(1 + 0.5 * x + rnorm(12)[g] + rnorm(96), 3)
  data.frame(y = y, x = x, g = g)
}

profile_case <- function(seed) {
  d <- simulated_slopes(seed)
  fit <- suppressMessages(lmer(y ~ x + (x | g), data = d, REML = FALSE))
  cond <- with_conditions(confint(fit, method = "profile", oldNames = FALSE),
                          warnings_as_messages = FALSE)
  ci <- cond$value
  list(
    seed = seed, formula = "y ~ x + (x|g)", reml = FALSE,
    data = list(y = jarr(d$y), x = jarr(d$x), g = jstr(as.character(d$g)), g_levels = jstr(levels(d$g))),
    theta = jarr(getME(fit, "theta")), deviance = jnum(deviance(fit)),
    profile_95 = list(rownames = jstr(rownames(ci)), colnames = jstr(colnames(ci)),
                      lower = jarr(ci[, 1]), upper = jarr(ci[, 2])),
    warnings = jstr(unique(cond$warnings))
  )
}

lme4_error <- function(expr) {
  value <- with_conditions(expr, errors = TRUE, warnings_as_messages = FALSE)$value
  if (!inherits(value, "lme4_error")) stop("lme4 did not fail")
  unclass(value)
}

sleep <- read_dataset("sleepstudy")
out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  profiles = list(singular_slope = profile_case(12), flat_ridge = profile_case(30)),
  errors = list(
    huge_weight = list(
      formula = "Reaction ~ Days + (Days|Subject)", dataset = "sleepstudy",
      weights = "c(1e20, rep(1, 179))",
      message = lme4_error(lmer(Reaction ~ Days + (Days | Subject), data = sleep,
                                weights = c(1e20, rep(1, 179))))
    )
  )
)
write_fixture(out, out_file)
