# Reference numbers for mixedfit.inference.emmeans: R's emmeans on lmer fits.
#
# Run from the repository root:
#     Rscript tests/lme4/emmeans_cases.R
# writes tests/lme4/fixtures/emmeans_cases.json: for each model (fitted by
# lme4::lmer on the bundled data, read back exactly as Python reads them) the
# data frames of emmeans' summaries, as.data.frame(summary(...)), of
#   emmeans(fit, specs, by = by, lmer.df = ...)             (kind "emmeans")
#   pairs(emmeans(...), adjust = ...)                       (kind "pairs")
# with the degrees of freedom by emmeans' default (Kenward-Roger below 3000
# observations, else asymptotic) or as asked, and the text print() shows.
# `prepare` names how the data set is changed before the fit; the Python tests
# (tests/inference/test_emmeans.py) make the same change.

suppressPackageStartupMessages({
  library(lme4)
  library(emmeans)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "emmeans_cases.json")
json_number_style(digits = "17", infinity = "string")

prepare_data <- function(dataset, prepare) {
  d <- read_dataset(dataset)
  switch(prepare,
    none = d,
    # Days as a factor with levels 0..9
    factor_days = { d$fDays <- factor(d$Days); d },
    # a two-level factor next to the numeric Days
    phase = { d$phase <- factor(ifelse(d$Days < 5, "early", "late")); d },
    # as phase, with the response missing in rows 1, 12 and 23 (Days 0): the
    # covariate's mean is over the rows fitted
    phase_na = { d$phase <- factor(ifelse(d$Days < 5, "early", "late"))
                 d$Reaction[c(1, 12, 23)] <- NA; d },
    # cake without recipe C at 225 degrees: one empty cell, X rank deficient
    drop_cell = d[!(d$recipe == "C" & d$temperature == "225"), ],
    stop("unknown prepare ", prepare))
}

# every model, and the emmeans calls made on it
cases <- list(
  list(name = "cake", dataset = "cake", prepare = "none", reml = TRUE,
       formula = "angle ~ recipe * temperature + (1|recipe:replicate)",
       calls = list(
         list(specs = "recipe", by = "temperature"),
         list(specs = "recipe", by = "temperature", lmer_df = "satterthwaite"),
         list(specs = "recipe", by = "temperature", pairs = "tukey"),
         list(specs = "recipe", by = "temperature", pairs = "holm", lmer_df = "satterthwaite"),
         list(specs = "recipe", by = "temperature", pairs = "none"),
         list(specs = "recipe"),
         list(specs = "recipe", pairs = "tukey"),
         list(specs = "recipe", pairs = "bonferroni"),
         list(specs = c("recipe", "temperature"), lmer_df = "satterthwaite"),
         list(specs = c("recipe", "temperature"), pairs = "tukey", lmer_df = "satterthwaite"),
         list(specs = "temperature", by = "recipe", lmer_df = "asymptotic"),
         list(specs = "temperature", by = "recipe", pairs = "tukey", lmer_df = "asymptotic"))),
  list(name = "machines", dataset = "Machines", prepare = "none", reml = TRUE,
       formula = "score ~ Machine + (1|Worker) + (1|Worker:Machine)",
       calls = list(
         list(specs = "Machine"),
         list(specs = "Machine", lmer_df = "satterthwaite"),
         list(specs = "Machine", pairs = "tukey"),
         list(specs = "Machine", pairs = "tukey", lmer_df = "satterthwaite"),
         list(specs = "Machine", pairs = "holm"),
         list(specs = "Machine", pairs = "none", lmer_df = "satterthwaite"))),
  list(name = "sleepstudy_fdays", dataset = "sleepstudy", prepare = "factor_days", reml = TRUE,
       formula = "Reaction ~ fDays + (1|Subject)",
       calls = list(
         list(specs = "fDays", lmer_df = "satterthwaite"),
         list(specs = "fDays", pairs = "tukey", lmer_df = "satterthwaite"),
         list(specs = "fDays", pairs = "holm"))),
  list(name = "sleepstudy_phase", dataset = "sleepstudy", prepare = "phase", reml = TRUE,
       formula = "Reaction ~ Days * phase + (Days|Subject)",
       calls = list(
         list(specs = "phase"),
         list(specs = "phase", lmer_df = "satterthwaite"),
         list(specs = "phase", pairs = "tukey", lmer_df = "satterthwaite"),
         # a family of one contrast: emmeans does not adjust, nor say so
         list(specs = "phase", pairs = "holm", lmer_df = "satterthwaite"),
         list(specs = "Days"),
         list(specs = "Days", by = "phase", lmer_df = "satterthwaite"))),
  list(name = "sleepstudy_phase_ml", dataset = "sleepstudy", prepare = "phase", reml = FALSE,
       formula = "Reaction ~ Days * phase + (Days|Subject)",
       calls = list(
         list(specs = "phase", lmer_df = "satterthwaite"),
         list(specs = "phase", pairs = "none", lmer_df = "satterthwaite"))),
  list(name = "sleepstudy_phase_na", dataset = "sleepstudy", prepare = "phase_na", reml = TRUE,
       formula = "Reaction ~ Days * phase + (Days|Subject)",
       calls = list(
         list(specs = "phase", lmer_df = "satterthwaite"),
         list(specs = "Days", by = "phase"))),
  list(name = "hsb82", dataset = "Hsb82", prepare = "none", reml = TRUE,
       formula = "mAch ~ meanses*cses + sector*cses + (cses|school)",
       calls = list(
         list(specs = "sector"),
         list(specs = "sector", pairs = "tukey"))),
  list(name = "cake_missing_cell", dataset = "cake", prepare = "drop_cell", reml = TRUE,
       formula = "angle ~ recipe * temperature + (1|recipe:replicate)",
       calls = list(
         list(specs = "recipe", by = "temperature", lmer_df = "satterthwaite"),
         list(specs = "recipe", lmer_df = "satterthwaite"),
         list(specs = "recipe", by = "temperature", pairs = "tukey", lmer_df = "satterthwaite"),
         list(specs = "recipe", by = "temperature", pairs = "holm", lmer_df = "satterthwaite")))
)

run_call <- function(fit, cl) {
  args <- list(fit, specs = cl$specs)
  if (!is.null(cl$by)) args$by <- cl$by
  if (!is.null(cl$lmer_df)) args$lmer.df <- cl$lmer_df
  res <- with_conditions({
    em <- do.call(emmeans, args)
    obj <- if (is.null(cl$pairs)) em else pairs(em, adjust = cl$pairs)
    list(table = as.data.frame(summary(obj)), text = capture.output(print(obj)))
  })
  tab <- res$value$table
  for (nm in names(tab)) if (is.factor(tab[[nm]])) tab[[nm]] <- as.character(tab[[nm]])
  list(specs = jstr(cl$specs), by = if (is.null(cl$by)) NULL else jstr(cl$by),
       lmer_df = if (is.null(cl$lmer_df)) NULL else cl$lmer_df,
       kind = if (is.null(cl$pairs)) "emmeans" else "pairs",
       adjust = if (is.null(cl$pairs)) NULL else cl$pairs,
       table = jtable(tab, column_names = TRUE),
       messages = jstr(res$messages),
       print_text = paste(res$value$text, collapse = "\n"))
}

run_case <- function(cs) {
  d <- prepare_data(cs$dataset, cs$prepare)
  fit <- with_conditions(lmer(as.formula(cs$formula), data = d, REML = cs$reml))
  fit_value <- fit$value
  message(sprintf("emmeans %-20s fitted", cs$name))
  list(name = cs$name, dataset = cs$dataset, prepare = cs$prepare, formula = cs$formula,
       reml = cs$reml, nobs = nobs(fit_value),
       theta = jarr(getME(fit_value, "theta")),
       beta = jobj(fixef(fit_value)),
       fit_messages = jstr(fit$messages),
       calls = lapply(cs$calls, function(cl) run_call(fit_value, cl)))
}

out <- list(
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  emmeans_version = as.character(packageVersion("emmeans")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  cases = setNames(lapply(cases, run_case), vapply(cases, `[[`, "", "name"))
)
write_fixture(out, out_file)
message("wrote ", out_file)
