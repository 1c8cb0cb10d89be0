# Reference numbers for mixedfit.inference (lrt, satterthwaite, predict).
#
# Run from the repository root:
#     Rscript tests/lme4/inference2_cases.R
# writes tests/lme4/fixtures/inference_lrt_satt.json with
#   satterthwaite: lmerTest 3.1-3 coefficient tables and Type III anova
#                  (Satterthwaite, and Kenward-Roger via pbkrtest), plus
#                  lmerTest's vcov_varpar (2 x inverse Hessian of its devfun_vp);
#   lrt:           lme4's anova(fit1, fit2) tables, heading and printout;
#   predict:       lme4's predict() on new data (existing subjects, re.form = NA,
#                  new levels, a subset of the random terms) and its error text;
#   refit:         lme4's refit(fit, newresp) estimates.
# The data are read from mixedfit/datasets/data/<name>.csv.gz + <name>.json,
# the very files Python loads, so both sides fit identical numbers.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "inference_lrt_satt.json")
# numbers as JSON: 17 significant digits (always read back as R's double)
json_number_style(digits = "17")

# Fit in an environment where the data set has its own name, so that the
# anova heading reads "Data: sleepstudy" as it would for a user.
data_env <- function(dataset, unordered = FALSE) {
  env <- new.env(parent = globalenv())
  d <- read_dataset(dataset)
  if (unordered) {  # ordered factors made plain factors (treatment contrasts)
    for (nm in names(d)) if (is.ordered(d[[nm]])) d[[nm]] <- factor(d[[nm]], ordered = FALSE)
  }
  assign(dataset, d, envir = env)
  env
}
fit_in <- function(env, dataset, formula, reml, fun = quote(lme4::lmer)) {
  cl <- list(fun, str2lang(formula), data = as.name(dataset))
  if (!reml) cl$REML <- FALSE
  with_conditions(eval(as.call(cl), env))$value
}

# ---------------------------------------------------------------------------
# Satterthwaite (and Kenward-Roger) tables from lmerTest

# sleepstudy, Machines and Penicillin as in fixture_cases (common.R); cake
# here by REML, with temperature as an ordered factor and as a plain one
satt_cases <- c(
  cases_named("sleepstudy_reml", "sleepstudy_ml"),
  list(list(name = "cake", dataset = "cake",
            formula = "angle ~ recipe * temp + (1|recipe:replicate)", reml = TRUE),
       list(name = "cake_factors", dataset = "cake", unordered = TRUE,
            formula = "angle ~ recipe * temperature + (1|recipe:replicate)", reml = TRUE)),
  cases_named("machines_nested", "penicillin")
)

run_satt <- function(cs) {
  env <- data_env(cs$dataset, isTRUE(cs$unordered))
  fit <- fit_in(env, cs$dataset, cs$formula, cs$reml, quote(lmerTest::lmer))
  av <- anova(fit, type = "III")
  stopifnot(inherits(fit, "lmerModLmerTest"))
  out <- list(
    name = cs$name, dataset = cs$dataset, formula = cs$formula, reml = cs$reml,
    unordered_factors = isTRUE(cs$unordered),
    theta = jarr(getME(fit, "theta")),
    sigma = jnum(sigma(fit)),
    beta_names = jstr(names(fixef(fit))),
    vcov_varpar = jrows(fit@vcov_varpar),
    coef_satterthwaite = jtable(summary(fit)$coefficients, column_names = TRUE),
    anova_type3 = jtable(av, column_names = TRUE),
    anova_heading = attr(av, "heading"),
    # lmerTest's Type III hypothesis matrices, one per term (rows: contrasts)
    hypotheses = lapply(attr(av, "hypotheses"), function(L) jrows(matrix(L, ncol = length(fixef(fit)))))
  )
  if (cs$reml) {
    kr <- with_conditions(list(coef = summary(fit, ddf = "Kenward-Roger")$coefficients,
                               anova = anova(fit, type = "III", ddf = "Kenward-Roger")))
    out$coef_kenward_roger <- jtable(kr$value$coef, column_names = TRUE)
    out$anova_type3_kenward_roger <- jtable(kr$value$anova, column_names = TRUE)
    out$kenward_roger_messages <- jstr(kr$messages)
  }
  message(sprintf("satterthwaite %-16s done", cs$name))
  out
}

# ---------------------------------------------------------------------------
# likelihood-ratio tests: anova(fit1, fit2) with lme4

lrt_cases <- list(
  list(name = "reml_refit", dataset = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ Days + (Days|Subject)", "Reaction ~ Days + (Days||Subject)"),
       reml = TRUE),
  list(name = "reml_norefit", dataset = "sleepstudy", refit = FALSE,
       formulas = c("Reaction ~ Days + (Days|Subject)", "Reaction ~ Days + (Days||Subject)"),
       reml = TRUE),
  list(name = "ml", dataset = "sleepstudy", refit = TRUE,
       formulas = c("Reaction ~ 1 + (Days|Subject)", "Reaction ~ Days + (Days|Subject)"),
       reml = FALSE)
)

run_lrt <- function(cs) {
  env <- data_env(cs$dataset)
  # the fits are called fit1, fit2, ... so that R's row names are the
  # default names mixedfit gives
  nms <- paste0("fit", seq_along(cs$formulas))
  for (i in seq_along(cs$formulas)) assign(nms[i], fit_in(env, cs$dataset, cs$formulas[i], cs$reml), envir = env)
  cl <- as.call(c(list(quote(anova)), lapply(nms, as.name), list(refit = cs$refit)))
  res <- with_conditions(eval(cl, env))
  tab <- res$value
  list(name = cs$name, dataset = cs$dataset, formulas = jstr(cs$formulas),
       reml = cs$reml, refit = cs$refit,
       table = jtable(tab, column_names = TRUE),
       heading = jstr(attr(tab, "heading")),
       messages = jstr(res$messages),
       print_text = paste(capture.output(print(tab)), collapse = "\n"))
}

# ---------------------------------------------------------------------------
# predict(), refit()

run_predict <- function() {
  env <- data_env("sleepstudy")
  fit <- fit_in(env, "sleepstudy", "Reaction ~ Days + (Days|Subject)", TRUE)
  old <- data.frame(Days = c(0, 2.5, 9, 4, 7.25),
                    Subject = c("308", "308", "335", "372", "309"))
  new <- rbind(old, data.frame(Days = c(3, 11), Subject = c("999", "new")))
  err <- tryCatch(predict(fit, newdata = new), error = function(e) conditionMessage(e))

  penv <- data_env("Penicillin")
  pfit <- fit_in(penv, "Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", TRUE)
  pnew <- data.frame(plate = c("a", "b", "x", "a"), sample = c("A", "F", "C", "D"))

  cenv <- data_env("cake")
  cfit <- fit_in(cenv, "cake", "angle ~ recipe * temp + (1|recipe:replicate)", TRUE)
  cnew <- data.frame(recipe = c("A", "C", "B", "A"), temp = c(180, 200.5, 225, 215),
                     replicate = c("1", "15", "3", "7"))
  # every row the same non-baseline recipe: the fit's levels, not the new data's, code it
  cnew_b <- data.frame(recipe = c("B", "B"), temp = c(190, 210), replicate = c("2", "9"))

  list(
    sleepstudy = list(
      formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE,
      fitted = jarr(predict(fit)),
      fixed_only_fitted = jarr(predict(fit, re.form = NA)),
      old = list(Days = jarr(old$Days), Subject = jstr(old$Subject)),
      new = list(Days = jarr(new$Days), Subject = jstr(new$Subject)),
      old_all = jarr(predict(fit, newdata = old)),
      old_fixed = jarr(predict(fit, newdata = old, re.form = NA)),
      old_fixed_tilde0 = jarr(predict(fit, newdata = old, re.form = ~0)),
      new_allow = jarr(predict(fit, newdata = new, allow.new.levels = TRUE)),
      new_fixed = jarr(predict(fit, newdata = new, re.form = NA)),
      new_error = err,
      old_intercept_only = jarr(predict(fit, newdata = old, re.form = ~(1|Subject))),
      fitted_intercept_only = jarr(predict(fit, re.form = ~(1|Subject)))
    ),
    cake = list(
      formula = "angle ~ recipe * temp + (1|recipe:replicate)", reml = TRUE,
      new = list(recipe = jstr(cnew$recipe), temp = jarr(cnew$temp), replicate = jstr(cnew$replicate)),
      all = jarr(predict(cfit, newdata = cnew)),
      fixed = jarr(predict(cfit, newdata = cnew, re.form = NA)),
      only_b = list(recipe = jstr(cnew_b$recipe), temp = jarr(cnew_b$temp), replicate = jstr(cnew_b$replicate),
                    all = jarr(predict(cfit, newdata = cnew_b)))
    ),
    penicillin = list(
      formula = "diameter ~ 1 + (1|plate) + (1|sample)", reml = TRUE,
      new = list(plate = jstr(pnew$plate), sample = jstr(pnew$sample)),
      plate_only = jarr(predict(pfit, newdata = pnew, re.form = ~(1|plate), allow.new.levels = TRUE)),
      sample_only = jarr(predict(pfit, newdata = pnew, re.form = ~(1|sample))),
      both_allow = jarr(predict(pfit, newdata = pnew, allow.new.levels = TRUE)),
      fitted_plate_only = jarr(predict(pfit, re.form = ~(1|plate)))
    )
  )
}

run_refit <- function() {
  env <- data_env("sleepstudy")
  fit <- fit_in(env, "sleepstudy", "Reaction ~ Days + (Days|Subject)", TRUE)
  d <- get("sleepstudy", env)
  # a deterministic new response (no random numbers: R's and numpy's differ)
  d$newresp <- d$Reaction + 20 * cos(d$Days) - 3 * d$Days
  rf <- refit(fit, d$newresp)
  # lme4 1.1-31's refit() stores a stale REML criterion in devcomp (REMLcrit(rf)
  # is not the criterion at its own theta), so the criterion is recomputed with
  # the deviance function of the same model fitted afresh to the new response.
  fresh <- lme4::lmer(newresp ~ Days + (Days|Subject), data = d)
  devfun <- update(fresh, devFunOnly = TRUE)
  list(formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE,
       newresp = jarr(d$newresp),
       theta = jarr(getME(rf, "theta")), beta = jarr(fixef(rf)), sigma = jnum(sigma(rf)),
       se = jarr(sqrt(diag(as.matrix(vcov(rf))))),
       objective = jnum(devfun(getME(rf, "theta"))),
       refit_REMLcrit_as_stored = jnum(REMLcrit(rf)),
       fresh_theta = jarr(getME(fresh, "theta")), fresh_beta = jarr(fixef(fresh)),
       fresh_objective = jnum(REMLcrit(fresh)))
}

fixture <- list(
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  satterthwaite = setNames(lapply(satt_cases, run_satt), vapply(satt_cases, `[[`, "", "name")),
  lrt = setNames(lapply(lrt_cases, run_lrt), vapply(lrt_cases, `[[`, "", "name")),
  predict = run_predict(),
  refit = run_refit()
)

write_fixture(fixture, out_file)
message("wrote ", out_file)
