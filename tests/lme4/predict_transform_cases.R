# Reference predictions of models with data-dependent transforms in their formula.
#
# Run from the repository root:
#     Rscript tests/lme4/predict_transform_cases.R
# writes tests/lme4/fixtures/predict_transform_cases.json
# (tests/inference/test_predict_transforms.py, and tests/formula/test_splines.py
# for the bases of ns() and bs() on their own).
#
# lme4's predict(fit, newdata) evaluates the formula on the new rows with the
# terms' "predvars": the training data's poly() coefficients, scale() centre
# and scale, spline knots.  Each case fits lmer (one glmer) on a bundled data
# set and predicts on new rows, some outside the training range of x and some
# of a grouping level the fit has not seen: all random effects
# (allow.new.levels = TRUE) and none (re.form = NA).  Factors of the new rows are
# coded with the fit's levels and contrasts (an ordered factor given as text).  Where lme4 refuses
# (an error), its text is stored instead of the predictions.
# About 5 s.

suppressPackageStartupMessages({
  library(lme4)
  library(splines)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jarr() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "predict_transform_cases.json")
json_number_style(digits = "17")

# new rows: Days below (-0.5), inside and above (12, 15) the training range 0..9;
# Subject 999 is new
sleep_new <- data.frame(Days = c(-0.5, 0, 2.5, 9, 12, 15, 4),
                        Subject = c("308", "309", "350", "372", "335", "999", "999"))
# factor(Days) needs levels of the fit
sleep_new_levels <- data.frame(Days = c(0, 3, 9, 5, 1),
                               Subject = c("308", "309", "350", "999", "335"))
# temp below (170), inside and above (240) the training range 175..225;
# replicate 16 is new
cake_new <- data.frame(recipe = c("A", "B", "C", "A", "C", "B"),
                       temp = c(170, 180, 200.5, 225, 240, 190),
                       replicate = c("1", "2", "15", "7", "16", "16"))
# temperature as text: coded with the fit's (polynomial) contrasts
cake_new_text <- data.frame(recipe = c("A", "B", "C", "A"),
                            temperature = c("175", "195", "225", "205"),
                            replicate = c("1", "2", "15", "16"))
# C() needs a factor in R (text stops lme4's predict: "object not interpretable
# as a factor"); mixedfit codes text as a factor of the fit's levels either way
cake_new_factor <- transform(cake_new, recipe = factor(recipe, levels = c("A", "B", "C")))
# size below (1), inside and above (40) the training range 2..34; herd 99 is new
cbpp_new <- data.frame(period = c("1", "2", "3", "4", "1"),
                       size = c(1, 10, 25, 40, 15),
                       herd = c("1", "5", "10", "15", "99"))

cases <- list(
  list(name = "poly", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ poly(Days, 2) + (1|Subject)"),
  list(name = "poly_raw", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ poly(Days, 2, raw = TRUE) + (1|Subject)"),
  list(name = "scale", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ scale(Days) + (1|Subject)"),
  list(name = "scale_args", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ scale(Days, center = FALSE) + (1|Subject)"),
  list(name = "log", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ log(Days + 1) + (1|Subject)"),
  list(name = "I_square", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ Days + I(Days^2) + (1|Subject)"),
  list(name = "factor", dataset = "sleepstudy", new = "sleep_new_levels",
       formula = "Reaction ~ factor(Days) + (1|Subject)"),
  list(name = "ns", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ ns(Days, 3) + (1|Subject)"),
  list(name = "ns_knots", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ ns(Days, knots = c(3, 6)) + (1|Subject)"),
  list(name = "bs", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ bs(Days) + (1|Subject)"),
  list(name = "bs_df", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ bs(Days, df = 5) + (1|Subject)"),
  list(name = "random_scale", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ scale(Days) + (scale(Days)|Subject)"),
  list(name = "random_poly", dataset = "sleepstudy", new = "sleep_new",
       formula = "Reaction ~ poly(Days, 2) + (poly(Days, 2)||Subject)"),
  list(name = "factor_by_poly", dataset = "cake", new = "cake_new",
       formula = "angle ~ recipe * poly(temp, 2) + (1|recipe:replicate)"),
  list(name = "factor_by_scale", dataset = "cake", new = "cake_new",
       formula = "angle ~ recipe * scale(temp) + (1|recipe:replicate)"),
  list(name = "factor_by_ns", dataset = "cake", new = "cake_new",
       formula = "angle ~ recipe + recipe:ns(temp, 2) + (1|recipe:replicate)"),
  list(name = "ordered_factor", dataset = "cake", new = "cake_new_text",
       formula = "angle ~ recipe + temperature + (1|replicate)"),
  list(name = "contrasts_set", dataset = "cake", new = "cake_new_factor",
       formula = "angle ~ C(recipe, contr.sum) * scale(temp) + (1|replicate)"),
  list(name = "glmer_scale_poly", dataset = "cbpp", new = "cbpp_new", family = "binomial",
       formula = "cbind(incidence, size - incidence) ~ period + poly(size, 2) + scale(size) + (1|herd)")
)

new_frames <- list(sleep_new = sleep_new, sleep_new_levels = sleep_new_levels,
                   cake_new = cake_new, cake_new_text = cake_new_text,
                   cake_new_factor = cake_new_factor, cbpp_new = cbpp_new)

as_columns <- function(d) lapply(d, function(col) if (is.numeric(col)) jarr(col) else jstr(col))

run_case <- function(cs) {
  env <- new.env(parent = globalenv())
  assign(cs$dataset, read_dataset(cs$dataset), envir = env)
  cl <- if (is.null(cs$family)) {
    list(quote(lme4::lmer), str2lang(cs$formula), data = as.name(cs$dataset))
  } else {
    list(quote(lme4::glmer), str2lang(cs$formula), data = as.name(cs$dataset),
         family = as.name(cs$family))
  }
  fit <- with_conditions(eval(as.call(cl), env))$value
  new <- new_frames[[cs$new]]
  attempt <- function(expr) {
    res <- with_conditions(expr, errors = TRUE)
    if (inherits(res$value, "lme4_error")) list(error = unclass(res$value))
    else list(values = jarr(res$value), warnings = jstr(unique(res$warnings)))
  }
  list(name = cs$name, dataset = cs$dataset, formula = cs$formula,
       family = if (is.null(cs$family)) NULL else cs$family,
       fixef = jobj(fixef(fit)), xnames = jstr(names(fixef(fit))),
       assign = jarr(attr(getME(fit, "X"), "assign")),
       theta = jarr(getME(fit, "theta")),
       predvars = deparse1(attr(terms(fit), "predvars")),
       newdata = as_columns(new),
       all = attempt(predict(fit, newdata = new, allow.new.levels = TRUE)),
       fixed = attempt(predict(fit, newdata = new, re.form = NA)),
       # the training rows as new data reproduce the fitted values
       training = attempt(predict(fit, newdata = get(cs$dataset, env))))
}

# splines' bases themselves (tests/formula/test_splines.py): on x with a missing value,
# knots chosen from df, and outside given boundary knots
x <- c(0.5, 3, NA, 7, 1, 10, 2.5, 8, 4)
basis <- function(b) list(values = jrows(unclass(b)[!is.na(x), , drop = FALSE]),
                          missing = jarr(which(is.na(x)) - 1),
                          knots = jarr(attr(b, "knots")), boundary = jarr(attr(b, "Boundary.knots")))
outside <- c(-2, 0, 5, 10, 13)
bases <- list(
  x = jarr(x), outside = jarr(outside),
  ns_df4 = basis(ns(x, df = 4)),
  ns_intercept = basis(ns(x, df = 3, intercept = TRUE)),
  bs_df5_degree2 = basis(bs(x, df = 5, degree = 2)),
  bs_knots = basis(bs(x, knots = c(2, 6))),
  ns_outside = jrows(unclass(ns(outside, knots = c(3, 6), Boundary.knots = c(0, 10)))),
  bs_outside = jrows(suppressWarnings(unclass(bs(outside, knots = c(3, 6), Boundary.knots = c(0, 10)))))
)

fixture <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = R.version.string,
  cases = setNames(lapply(cases, run_case), vapply(cases, `[[`, "", "name")),
  bases = bases
)
write_fixture(fixture, out_file)
cat("wrote", out_file, "\n")
