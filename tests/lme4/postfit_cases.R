# Reference numbers for what an lme4 user does after the fit (issue 22):
# performance's R² and ICC, lmerTest's ranova() and drop1(), lme4's
# drop1(test = "Chisq"), R's update.formula() and update(fit, ...), and
# lattice's default panel layout for xyplot(y ~ x | g).
#
# Run from the repository root:
#     Rscript tests/lme4/postfit_cases.R
# writes tests/lme4/fixtures/postfit_cases.json (about 10 s).  The data are
# read from mixedfit/datasets/data/<name>.csv.gz + <name>.json, the very
# files Python loads, so both sides fit identical numbers.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(performance)
  library(lattice)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "postfit_cases.json")
json_number_style(digits = "17", infinity = "null")

# The data set is put in the global environment under its own name (and any
# extra columns added to it), so that update() inside ranova()/drop1() finds it.
fit_case <- function(cs, fun = lmerTest::lmer) {
  d <- read_dataset(cs$dataset)
  for (nm in names(cs$extra)) d[[nm]] <- eval(str2lang(cs$extra[[nm]]), list(d = d))
  if (isTRUE(cs$unordered)) {
    for (nm in names(d)) if (is.ordered(d[[nm]])) d[[nm]] <- factor(d[[nm]], ordered = FALSE)
  }
  assign(cs$dataset, d, envir = globalenv())
  cl <- list(fun, str2lang(cs$formula), data = as.name(cs$dataset), REML = cs$reml)
  if (!is.null(cs$weights)) cl$weights <- as.name(cs$weights)
  with_conditions(eval(as.call(cl), globalenv()))$value
}

case <- function(name, dataset, formula, reml = TRUE, ...) {
  list(name = name, dataset = dataset, formula = formula, reml = reml, ...)
}
describe <- function(cs) {
  list(name = cs$name, dataset = cs$dataset, formula = cs$formula, reml = cs$reml,
       extra = if (is.null(cs$extra)) empty_obj() else cs$extra,
       weights = if (is.null(cs$weights)) NULL else cs$weights,
       unordered = isTRUE(cs$unordered))
}

sleep_w <- list(w = "1 + (d$Days %% 3)")
cases <- list(
  case("sleepstudy_reml", "sleepstudy", "Reaction ~ Days + (Days|Subject)"),
  case("sleepstudy_ml", "sleepstudy", "Reaction ~ Days + (Days|Subject)", reml = FALSE),
  case("sleepstudy_uncorr", "sleepstudy", "Reaction ~ Days + (Days||Subject)"),
  case("sleepstudy_weights", "sleepstudy", "Reaction ~ Days + (Days|Subject)",
       extra = sleep_w, weights = "w"),
  case("sleepstudy_intercept", "sleepstudy", "Reaction ~ Days + I(Days^2) + (1|Subject)"),
  case("dyestuff_reml", "Dyestuff", "Yield ~ 1 + (1|Batch)"),
  case("dyestuff_ml", "Dyestuff", "Yield ~ 1 + (1|Batch)", reml = FALSE),
  case("dyestuff2", "Dyestuff2", "Yield ~ 1 + (1|Batch)"),
  case("penicillin", "Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
  case("pastes", "Pastes", "strength ~ 1 + (1|batch/cask)"),
  case("machines_factor_slope", "Machines", "score ~ Machine + (0 + Machine|Worker)"),
  case("machines_nested", "Machines", "score ~ Machine + (1|Worker/Machine)"),
  case("cake", "cake", "angle ~ recipe * temp + (1|recipe:replicate)", unordered = TRUE),
  case("hsb82", "Hsb82", "mAch ~ meanses*cses + sector*cses + (cses|school)"),
  case("sleepstudy_rankdef", "sleepstudy", "Reaction ~ Days + Days2 + f + (1|Subject)",
       extra = list(Days2 = "2 * d$Days", f = "factor(d$Days %% 3)"))
)
names(cases) <- vapply(cases, `[[`, "", "name")

# ---------------------------------------------------------------------------
# performance 0.10.2 / insight 0.19.0: r2_nakagawa() and icc()

r2_icc_case <- function(cs) {
  fit <- fit_case(cs)
  r2 <- with_conditions(capture.output(v <- r2_nakagawa(fit)))
  ic <- with_conditions(capture.output(i <- icc(fit)))
  vars <- with_conditions(insight::get_variance(fit))$value
  num <- function(x) if (is.null(x) || length(x) != 1 || is.na(x)) NULL else jnum(x)
  c(describe(cs), list(
    theta = jarr(getME(fit, "theta")),
    singular = isSingular(fit),
    r2_conditional = num(unname(v$R2_conditional)),
    r2_marginal = num(unname(v$R2_marginal)),
    icc_adjusted = if (is.data.frame(i)) num(i$ICC_adjusted) else NULL,
    icc_unadjusted = if (is.data.frame(i)) num(i$ICC_unadjusted) else NULL,
    var_fixed = num(vars$var.fixed), var_random = num(vars$var.random),
    var_residual = num(vars$var.residual),
    r2_output = paste(r2$value, collapse = "\n"),
    r2_messages = jstr(r2$messages), icc_messages = jstr(ic$messages)))
}
r2_icc <- lapply(cases[c("sleepstudy_reml", "sleepstudy_ml", "sleepstudy_uncorr",
                         "sleepstudy_weights", "sleepstudy_intercept", "dyestuff_reml",
                         "dyestuff2", "penicillin", "pastes", "machines_factor_slope",
                         "machines_nested", "cake", "hsb82")], r2_icc_case)

# ---------------------------------------------------------------------------
# lmerTest 3.1-3: ranova()

ranova_case <- function(cs) {
  fit <- fit_case(cs)
  tab <- with_conditions(ranova(fit))
  rv <- tab$value
  c(describe(cs), list(
    theta = jarr(getME(fit, "theta")),
    table = jtable(rv, column_names = TRUE),
    heading = jstr(attr(rv, "heading")),
    formulae = jstr(vapply(attr(rv, "formulae"), deparse1, "")),
    printed = paste(capture.output(print(rv)), collapse = "\n"),
    messages = jstr(tab$messages)))
}
ranova_tabs <- lapply(cases[c("sleepstudy_reml", "sleepstudy_ml", "sleepstudy_uncorr",
                              "sleepstudy_weights", "sleepstudy_intercept", "dyestuff_reml",
                              "dyestuff_ml", "penicillin", "pastes", "machines_factor_slope",
                              "machines_nested", "cake", "hsb82")], ranova_case)

# ---------------------------------------------------------------------------
# lmerTest's drop1() (Satterthwaite F tests of the marginal terms) and
# lme4's drop1(test = "Chisq") (likelihood-ratio tests, refitted models)

drop1_case <- function(cs) {
  fit <- fit_case(cs)
  d1 <- drop1(fit)
  kr <- if (cs$reml) drop1(fit, ddf = "Kenward-Roger") else NULL
  fit4 <- fit_case(cs, quote(lme4::lmer))
  d4 <- with_conditions(drop1(fit4, test = "Chisq"))
  c(describe(cs), list(
    satterthwaite = jtable(d1, column_names = TRUE),
    heading = jstr(attr(d1, "heading")),
    printed = paste(capture.output(print(d1)), collapse = "\n"),
    kenward_roger = if (is.null(kr)) NULL else jtable(kr, column_names = TRUE),
    chisq = jtable(d4$value, column_names = TRUE),
    chisq_heading = jstr(attr(d4$value, "heading")),
    chisq_printed = paste(capture.output(print(d4$value)), collapse = "\n"),
    chisq_messages = jstr(d4$messages)))
}
drop1_tabs <- lapply(cases[c("sleepstudy_reml", "sleepstudy_ml", "sleepstudy_intercept",
                             "machines_nested", "cake", "hsb82", "sleepstudy_rankdef")], drop1_case)

# ---------------------------------------------------------------------------
# R's update.formula(old, new), deparsed

formula_pairs <- list(
  c("Reaction ~ Days + (Days | Subject)", ". ~ . - Days"),
  c("Reaction ~ Days + (Days | Subject)", "~ . - Days"),
  c("Reaction ~ Days + (Days | Subject)", "~ . + I(Days^2)"),
  c("Reaction ~ Days + (Days | Subject)", "log(.) ~ ."),
  c("Reaction ~ Days + (Days | Subject)", ". ~ . - (Days | Subject) + (1 | Subject)"),
  c("Reaction ~ Days + (Days | Subject)", ". ~ . - 1"),
  c("Reaction ~ Days + (Days | Subject)", "sqrt(.) ~ . + 0"),
  c("Reaction ~ 0 + Days + (1 | Subject)", ". ~ . + 1"),
  c("y ~ a * b + (1 | g)", ". ~ . - a:b"),
  c("y ~ a * b + (1 | g)", ". ~ . - a"),
  c("y ~ a + b + (1 | g)", ". ~ .^2"),
  c("y ~ a + b + (1 | g)", ". ~ . + a:b + c"),
  c("y ~ a + offset(o) + (1 | g)", ". ~ . - a"),
  c("y ~ a + (1 | g/h)", ". ~ . - (1 | g/h) + (1 | g)"),
  c("y ~ a + (a || g)", ". ~ . + b"),
  c("y ~ a", "z ~ ."),
  c("y ~ a + b", ". ~ b"),
  c("log(y) ~ a + (1 | g)", "exp(.) ~ ."),
  c("y ~ poly(x, 2) + (x | g)", ". ~ . - poly(x, 2) + x"),
  c("y ~ `my col` + (1 | g)", ". ~ . + z")
)
update_formulas <- lapply(formula_pairs, function(p) {
  list(old = p[[1]], new = p[[2]],
       result = deparse1(update.formula(as.formula(p[[1]]), as.formula(p[[2]]))))
})

# update(fit, ...) refits: the formula(s) and the estimates
update_fit <- function(label, cs, ...) {
  fit <- fit_case(cs, quote(lme4::lmer))
  new <- with_conditions(update(fit, ...))$value
  list(label = label, case = describe(cs), formula = deparse1(formula(new)),
       reml = isREML(new), fixef = jobj(fixef(new)), theta = jarr(getME(new, "theta")),
       loglik = jnum(logLik(new)), nobs = nobs(new))
}
ss <- cases[["sleepstudy_reml"]]
update_fits <- list(
  update_fit("minus_days", ss, . ~ . - Days),
  update_fit("one_sided", ss, ~ . + I(Days^2)),
  update_fit("log_response", ss, log(.) ~ .),
  update_fit("random_intercept", ss, . ~ . - (Days | Subject) + (1 | Subject)),
  update_fit("ml", ss, REML = FALSE),
  update_fit("formula_and_ml", ss, . ~ . - Days, REML = FALSE),
  # update() edits formula(fit), where lme4 has expanded (Days || Subject)
  update_fit("uncorrelated_minus_days", cases[["sleepstudy_uncorr"]], . ~ . - Days)
)

# ---------------------------------------------------------------------------
# lattice's default layout of xyplot(y ~ x | g) on a square device (pdf(NULL)):
# columns and rows for each number of panels; panel 1 is drawn bottom left
# (as.table = FALSE), row by row upwards.

set.seed(1)
lattice_layout <- lapply(c(1:20, 25, 30, 50), function(k) {
  d <- data.frame(x = rep(1:3, k), y = rnorm(3 * k), g = factor(rep(seq_len(k), each = 3)))
  pdf(NULL)
  print(xyplot(y ~ x | g, d, type = c("p", "r")))
  pos <- trellis.currentLayout()
  dev.off()
  list(panels = k, cols = ncol(pos), rows = nrow(pos), as_table = FALSE)
})

write_fixture(list(
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  performance_version = as.character(packageVersion("performance")),
  insight_version = as.character(packageVersion("insight")),
  lattice_version = as.character(packageVersion("lattice")),
  r2_icc = unname(r2_icc),
  ranova = unname(ranova_tabs),
  drop1 = unname(drop1_tabs),
  update_formulas = update_formulas,
  update_fits = update_fits,
  lattice_layout = lattice_layout
), out_file)
