# lme4's answers on hard and bad inputs, for tests/test_errors.py.
#
# Run from the repository root:
#     Rscript tests/lme4/hard_cases.R
# writes tests/lme4/fixtures/hard_cases.json with
#   fits:   models lme4 fits with difficulty (a singular fit, predictors
#           scaled by 1e-6 and 1e6, collinear random slopes, crossed designs
#           with a nearly empty cell): the data change made (extra columns,
#           rows dropped, 0-based), lme4's objective, theta, beta, its
#           warnings and messages (the rescale warning's text among them) and the
#           fit messages its summary prints under "fit warnings:";
#   errors: the text of lme4's error for each bad input mixedfit refuses
#           (one-level grouping factor, negative weights, ...).
# The data are read from mixedfit/datasets/data/<name>.csv.gz + <name>.json,
# the very files Python loads, so both sides fit identical numbers.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

out_file <- file.path(fixtures_dir, "hard_cases.json")
# 17 significant digits always read back as R's double; NA/Inf as null.
json_number_style(digits = "17")

# ---------------------------------------------------------------------------
# hard fits

sleep <- read_dataset("sleepstudy")
days <- sleep$Days

fits <- list(
  list(id = "dyestuff2_singular", dataset = "Dyestuff2",
       formula = "Yield ~ 1 + (1|Batch)", reml = TRUE),
  list(id = "scale_small_intercept", dataset = "sleepstudy",
       formula = "Reaction ~ Dsmall + (1|Subject)", reml = TRUE,
       extra = list(Dsmall = days * 1e-6)),
  list(id = "scale_big_intercept", dataset = "sleepstudy",
       formula = "Reaction ~ Dbig + (1|Subject)", reml = TRUE,
       extra = list(Dbig = days * 1e6)),
  list(id = "scale_both", dataset = "sleepstudy",
       formula = "Reaction ~ Dsmall + Dsq + (1|Subject)", reml = FALSE,
       extra = list(Dsmall = days * 1e-6, Dsq = days^2 * 1e6)),
  list(id = "scale_small_slope", dataset = "sleepstudy",
       formula = "Reaction ~ Dsmall + (Dsmall|Subject)", reml = TRUE,
       extra = list(Dsmall = days * 1e-6)),
  list(id = "scale_small_slope_ml", dataset = "sleepstudy",
       formula = "Reaction ~ Dsmall + (Dsmall|Subject)", reml = FALSE,
       extra = list(Dsmall = days * 1e-6)),
  list(id = "scale_big_slope", dataset = "sleepstudy",
       formula = "Reaction ~ Dbig + (Dbig|Subject)", reml = TRUE,
       extra = list(Dbig = days * 1e6)),
  list(id = "collinear_slopes", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days + D2|Subject)", reml = TRUE,
       extra = list(D2 = 2 * days)),
  # Worker 1 on machine A keeps one of its three scores.
  list(id = "machines_sparse_cell", dataset = "Machines",
       formula = "score ~ Machine + (1|Worker) + (1|Worker:Machine)", reml = TRUE,
       drop_rows = c(1L, 2L)),
  # plate a keeps one of its six diameters.
  list(id = "penicillin_sparse_plate", dataset = "Penicillin",
       formula = "diameter ~ 1 + (1|plate) + (1|sample)", reml = FALSE,
       drop_rows = 1:5)
)

fit_case <- function(cs) {
  d <- read_dataset(cs$dataset)
  for (nm in names(cs$extra)) d[[nm]] <- cs$extra[[nm]]
  if (length(cs$drop_rows)) d <- d[-(cs$drop_rows + 1L), , drop = FALSE]
  # the value, or lme4's error text (class "lme4_error"); warnings kept apart from messages
  cond <- with_conditions(lmer(as.formula(cs$formula), data = d, REML = cs$reml),
                          errors = TRUE, warnings_as_messages = FALSE)
  fit <- cond$value
  if (inherits(fit, "lme4_error")) stop(cs$id, ": lme4 failed: ", fit)
  dc <- getME(fit, "devcomp")
  list(
    id = cs$id, dataset = cs$dataset, formula = cs$formula, reml = cs$reml,
    extra_columns = if (length(cs$extra)) lapply(cs$extra, jarr) else empty_obj(),
    drop_rows = I(as.integer(cs$drop_rows)),
    objective = jnum(if (cs$reml) dc$cmp[["REML"]] else dc$cmp[["dev"]]),
    theta = jarr(getME(fit, "theta")),
    beta = jarr(fixef(fit)),
    beta_names = jstr(names(fixef(fit))),
    sigma = jnum(sigma(fit)),
    isSingular = isSingular(fit),
    conv_messages = jstr(as.character(fit@optinfo$conv$lme4$messages)),
    warnings = jstr(cond$warnings),
    messages = jstr(cond$messages),
    # what summary() prints under "fit warnings:"
    fit_msgs = jstr(as.character(summary(fit)$fitMsgs))
  )
}

# ---------------------------------------------------------------------------
# lme4's words for the inputs it refuses

error_text <- function(expr) {
  value <- with_conditions(expr, errors = TRUE, warnings_as_messages = FALSE)$value
  if (!inherits(value, "lme4_error")) stop("lme4 did not refuse: ", deparse(substitute(expr)))
  as.character(value)
}

errors <- local({
  d <- sleep
  d$one <- "a"
  d$id <- seq_len(nrow(d))
  d$pair <- (seq_len(nrow(d)) - 1L) %/% 2L
  d$text <- as.character(d$Reaction)
  d$inf <- d$Reaction
  d$inf[3] <- Inf
  d$missing <- NA_real_
  f <- Reaction ~ Days + (1 | Subject)
  list(
    one_level = error_text(lmer(Reaction ~ Days + (1 | one), d)),
    levels_equal_n = error_text(lmer(Reaction ~ Days + (1 | id), d)),
    too_many_random_effects = error_text(lmer(Reaction ~ Days + (Days | pair), d)),
    response_not_numeric = error_text(lmer(text ~ Days + (1 | Subject), d)),
    response_infinite = error_text(lmer(inf ~ Days + (1 | Subject), d)),
    all_rows_dropped = error_text(lmer(missing ~ Days + (1 | Subject), d)),
    empty_data = error_text(lmer(f, d[0, ])),
    na_fail = error_text(lmer(missing ~ Days + (1 | Subject), d, na.action = na.fail)),
    negative_weights = error_text(lmer(f, d, weights = rep(-1, nrow(d)))),
    weights_length = error_text(lmer(f, d, weights = rep(1, 10))),
    start_length = error_text(lmer(Reaction ~ Days + (Days | Subject), d, start = c(1, 2))),
    no_random_effects = error_text(lmer(Reaction ~ Days, d))
  )
})

out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  fits = lapply(fits, fit_case),
  errors = errors
)
write_fixture(out, out_file)
message("wrote ", out_file)
