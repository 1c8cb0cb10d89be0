# lme4's fits of one data set with the response, and a predictor, shifted by large
# constants, for tests/test_shift_cases.py (issue "Reliability": precision lost to
# a response or predictor with a large mean).
#
# Run from the repository root:
#     Rscript tests/lme4/shift_cases.R
# writes tests/lme4/fixtures/shift_cases.json with
#   data:  the simulated data set (20 groups g of 10 rows; x; the response y0;
#          weights w and an offset off), generated here from a fixed seed;
#   fits:  per case, the shifts made (y = y0 + shift_y; the predictor xs =
#          x * scale_x + shift_x), the formula, REML or ML, weights / offset,
#          and lme4's objective, theta, beta (with names: lme4 drops a
#          predictor it finds collinear with the intercept), sigma, logLik,
#          starting theta and warnings; and as `reference` the same for the
#          same model on the unshifted data (shift_y = shift_x = 0, scale_x = 1).
#
# x and y0 are multiples of 1/4 and 1/256 below 2^8, so every shifted value
# (up to 1e12 < 2^40) is exact in double precision: each shifted data set is
# the unshifted one, exactly, and its true fit is the reference with the
# intercept moved (by shift_y, and by -slope * shift_x) and the slope divided
# by scale_x.  lme4 itself loses precision as the shifts grow (at y + 1e12 its
# objective is 4.5e-4 below the reference's for (1|g) and 7.5e-3 above it for
# (x|g), with convergence warnings from 3e10 on): the tests hold mixedfit to
# the reference, mapped.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

# common.R, next to this script: jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "shift_cases.json")
json_number_style(digits = "17")

set.seed(20261206)
ng <- 20L
per <- 10L
n <- ng * per
g <- factor(sprintf("g%02d", rep(seq_len(ng), each = per)))
x <- round(runif(n, 0, 10) * 4) / 4
u0 <- rnorm(ng)
u1 <- 0.3 * rnorm(ng)
y0 <- round((2 + 0.5 * x + u0[g] + u1[g] * x + rnorm(n)) * 256) / 256
w <- 1 + (seq_len(n) %% 3)
off <- 0.25 * round(4 * rnorm(n))
stopifnot(all(y0 + 1e12 - 1e12 == y0), all(x + 1e12 - 1e12 == x))

y_shifts <- c(0, 1e6, 1e7, 1e8, 1e10, 3e10, 1e12)
cases <- c(
  lapply(y_shifts, function(s) list(formula = "y ~ x + (1|g)", reml = FALSE, shift_y = s)),
  lapply(y_shifts, function(s) list(formula = "y ~ x + (x|g)", reml = TRUE, shift_y = s)),
  # a predictor with a large mean in the fixed effects; at 1e8 lme4's rank check
  # (chkRank.drop.cols, tol 1e-7) finds it collinear with the intercept and drops it
  lapply(c(0, 1e3, 1e5, 1e6, 1e8), function(s)
    list(formula = "y ~ xs + (1|g)", reml = TRUE, shift_y = 0, shift_x = s)),
  list(
    # epoch seconds: days since 2023-11-14 (1.7e9 s), and a response of mean 1e6
    list(formula = "y ~ xs + (1|g)", reml = FALSE, shift_y = 1e6, shift_x = 1.7e9, scale_x = 86400),
    # prior weights and an offset, on a response of mean 1e8
    list(formula = "y ~ x + (x|g)", reml = TRUE, shift_y = 1e8, weights = "w", offset = "off")
  )
)

fit_case <- function(cs) {
  d <- data.frame(g = g, x = x, y = y0 + cs$shift_y, w = w, off = off)
  d$xs <- x * (if (is.null(cs$scale_x)) 1 else cs$scale_x) + (if (is.null(cs$shift_x)) 0 else cs$shift_x)
  fit_with <- function(...) {
    lmer(as.formula(cs$formula), data = d, REML = cs$reml,
         weights = if (is.null(cs$weights)) NULL else d[[cs$weights]],
         offset = if (is.null(cs$offset)) NULL else d[[cs$offset]], ...)
  }
  cond <- with_conditions(fit_with(), errors = TRUE, warnings_as_messages = FALSE)
  fit <- cond$value
  if (inherits(fit, "lme4_error")) stop(cs$formula, ": lme4 failed: ", fit)
  dc <- getME(fit, "devcomp")
  # the theta lme4's optimizer starts from (1s and 0s, or from the group means for (1|g))
  start <- suppressWarnings(suppressMessages(environment(fit_with(devFunOnly = TRUE))$pp$theta))
  list(
    formula = cs$formula, reml = cs$reml, shift_y = jnum(cs$shift_y),
    shift_x = jnum(if (is.null(cs$shift_x)) 0 else cs$shift_x),
    scale_x = jnum(if (is.null(cs$scale_x)) 1 else cs$scale_x),
    weights = cs$weights, offset = cs$offset,
    objective = jnum(if (cs$reml) dc$cmp[["REML"]] else dc$cmp[["dev"]]),
    theta = jarr(getME(fit, "theta")),
    beta = jarr(fixef(fit)),
    beta_names = jstr(names(fixef(fit))),
    se = jarr(sqrt(diag(as.matrix(vcov(fit))))),
    sigma = jnum(sigma(fit)),
    logLik = jnum(as.numeric(logLik(fit))),
    start_theta = jarr(start),
    warnings = jstr(cond$warnings),
    messages = jstr(cond$messages)
  )
}

# each case with lme4's fit of the same model on the unshifted data: the truth
# for the shifted one, up to the move of the intercept and the slope's scale
fits <- lapply(cases, function(cs) {
  out <- fit_case(cs)
  out$reference <- fit_case(modifyList(cs, list(shift_y = 0, shift_x = 0, scale_x = 1)))
  out
})

out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  data = list(g = jstr(as.character(g)), x = jarr(x), y0 = jarr(y0), w = jarr(w), off = jarr(off)),
  fits = fits
)
write_fixture(out, out_file)
message("wrote ", out_file)
