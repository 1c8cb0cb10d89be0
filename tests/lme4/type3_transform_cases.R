# Reference numbers for Type III tests and emmeans on models whose fixed terms
# are transforms of a numeric column: matrix-valued ones (poly(), raw poly(),
# ns(), bs()), a one-column matrix (scale()) and factor(), each crossed with a
# factor (on cake; also without an intercept), and a number crossed with poly()
# (on Hsb82).  A matrix term's columns are numbers, not the levels of a factor:
# lmerTest tests each such term with one contrast per column, and emmeans
# evaluates the basis at the covariate's mean (the terms' predvars).
#
# Run from the repository root:
#     Rscript tests/lme4/type3_transform_cases.R
# writes tests/lme4/fixtures/type3_transform_cases.json
# (tests/inference/test_type3_transforms.py): for each model, fitted by
# lmerTest::lmer (REML) on the bundled data read back exactly as Python reads
# them,
#   anova(fit, type = "III")                          Satterthwaite's df
#   anova(fit, type = "III", ddf = "Kenward-Roger")
#   attr(anova(fit), "hypotheses")                    lmerTest's contrasts
#   as.data.frame(summary(emmeans(fit, specs, ...)))  and pairs() of them
# About 10 s.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(emmeans)
  library(splines)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "type3_transform_cases.json")
json_number_style(digits = "17", infinity = "string")

# emmeans calls made on every model (unless a case names its own)
em_calls <- list(
  list(specs = "recipe"),
  list(specs = "recipe", lmer_df = "satterthwaite"),
  list(specs = "recipe", pairs = "tukey"),
  list(specs = "recipe", pairs = "holm", lmer_df = "satterthwaite"))

cases <- list(
  list(name = "poly", formula = "angle ~ recipe * poly(temp, 2) + (1|replicate)"),
  list(name = "poly_raw", formula = "angle ~ recipe * poly(temp, 2, raw = TRUE) + (1|replicate)"),
  list(name = "poly3_main", formula = "angle ~ recipe + poly(temp, 3) + (1|replicate)"),
  list(name = "ns", formula = "angle ~ recipe * ns(temp, 3) + (1|replicate)"),
  list(name = "bs", formula = "angle ~ recipe * bs(temp) + (1|recipe:replicate)"),
  list(name = "scale", formula = "angle ~ recipe * scale(temp) + (1|replicate)"),
  list(name = "factor", formula = "angle ~ recipe * factor(temp) + (1|replicate)"),
  list(name = "no_intercept", formula = "angle ~ 0 + recipe * poly(temp, 2) + (1|replicate)"),
  # a number crossed with a matrix (lmerTest: a matrix is not "numeric" in
  # its containment of terms); 7185 rows: no Kenward-Roger, and emmeans falls
  # back to asymptotic df
  list(name = "number_by_poly", dataset = "Hsb82", kenward_roger = FALSE,
       formula = "mAch ~ meanses * poly(cses, 2) + sector + (1|school)",
       calls = list(list(specs = "sector"), list(specs = "sector", pairs = "tukey")))
)

run_call <- function(fit, cl) {
  args <- list(fit, specs = cl$specs)
  if (!is.null(cl$lmer_df)) args$lmer.df <- cl$lmer_df
  res <- with_conditions({
    em <- do.call(emmeans, args)
    obj <- if (is.null(cl$pairs)) em else pairs(em, adjust = cl$pairs)
    as.data.frame(summary(obj))
  })
  tab <- res$value
  for (nm in names(tab)) if (is.factor(tab[[nm]])) tab[[nm]] <- as.character(tab[[nm]])
  list(specs = jstr(cl$specs), lmer_df = if (is.null(cl$lmer_df)) NULL else cl$lmer_df,
       kind = if (is.null(cl$pairs)) "emmeans" else "pairs",
       adjust = if (is.null(cl$pairs)) NULL else cl$pairs,
       table = jtable(tab, column_names = TRUE), messages = jstr(res$messages))
}

run_case <- function(cs) {
  dataset <- if (is.null(cs$dataset)) "cake" else cs$dataset
  env <- new.env(parent = globalenv())
  assign(dataset, read_dataset(dataset), envir = env)
  fit <- with_conditions(eval(call("lmer", str2lang(cs$formula), data = as.name(dataset),
                                   REML = TRUE), env))$value
  stopifnot(inherits(fit, "lmerModLmerTest"))
  satt <- with_conditions(anova(fit, type = "III"))
  with_kr <- !isFALSE(cs$kenward_roger)
  kr <- if (with_kr) with_conditions(anova(fit, type = "III", ddf = "Kenward-Roger"))
  p <- length(fixef(fit))
  message(sprintf("type3 %-14s fitted", cs$name))
  calls <- if (is.null(cs$calls)) em_calls else cs$calls
  list(name = cs$name, dataset = dataset, formula = cs$formula,
       theta = jarr(getME(fit, "theta")),
       beta = jobj(fixef(fit)),
       predvars = deparse1(attr(terms(fit), "predvars")),
       anova_satterthwaite = jtable(satt$value, column_names = TRUE),
       anova_kenward_roger = if (with_kr) jtable(kr$value, column_names = TRUE),
       anova_messages = jstr(c(satt$messages, kr$messages)),
       hypotheses = lapply(attr(satt$value, "hypotheses"),
                           function(L) jrows(matrix(L, ncol = p))),
       emmeans = lapply(calls, function(cl) run_call(fit, cl)))
}

out <- list(
  r_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  lmerTest_version = as.character(packageVersion("lmerTest")),
  emmeans_version = as.character(packageVersion("emmeans")),
  pbkrtest_version = as.character(packageVersion("pbkrtest")),
  cases = setNames(lapply(cases, run_case), vapply(cases, `[[`, "", "name"))
)
write_fixture(out, out_file)
message("wrote ", out_file)
