# Reference fixtures for mixedfit's tests, produced by lme4 itself.
#
# Run from the repository root, after tests/lme4/export_datasets.R:
#     Rscript tests/lme4/make_fixtures.R            # every case
#     Rscript tests/lme4/make_fixtures.R dyestuff2  # only the named cases
#
# The data are read back from mixedfit/datasets/data/*.csv.gz + *.json (the
# very files Python loads), every case is fitted with lme4::lmer under its
# default control (nloptwrap / BOBYQA), and one JSON file per case is written
# to tests/lme4/fixtures/<case>.json, plus lrt_sleepstudy.json (anova()
# likelihood-ratio tests).
#
# Numbers are written with the shortest decimal (15 or 17 significant digits)
# that reads back as exactly R's double; jsonlite alone (digits = NA) stops at
# 15 digits, so numeric values are formatted (common.R) and passed to
# jsonlite verbatim.  NA, NaN and Inf are written as null.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

# common.R, next to this script: read_dataset(), jnum() ..., write_fixture(), with_conditions()
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

dir.create(fixtures_dir, showWarnings = FALSE, recursive = TRUE)

nz <- function(x) if (is.null(x)) character(0) else as.character(x)

# The messages and warnings with_conditions() collected (and muffled), echoed
# to stderr.
log_conditions <- function(case, what, cond) {
  for (m in cond$messages) message(sprintf("  [%s] %s: %s", case, what, m))
}

# ---------------------------------------------------------------------------
# the cases: fixture_cases of common.R (inference_cases.R and
# inference2_cases.R fit some of the same models)

# The data for a case, in a fresh environment under the data set's own name
# (so that print() shows "Data: sleepstudy"), plus the extra columns.
case_env <- function(cs) {
  env <- new.env(parent = globalenv())
  d <- read_dataset(cs$dataset)
  if (isTRUE(cs$unordered)) {
    for (nm in names(d)) {
      if (is.ordered(d[[nm]])) d[[nm]] <- factor(d[[nm]], levels = levels(d[[nm]]), ordered = FALSE)
    }
  }
  assign(cs$dataset, d, envir = env)
  extra <- list()
  for (nm in names(cs$extra)) {
    # evaluated exactly as written, e.g. 1 + (sleepstudy$Days %% 3)
    extra[[nm]] <- eval(str2lang(cs$extra[[nm]]), env)
    d[[nm]] <- extra[[nm]]
  }
  assign(cs$dataset, d, envir = env)
  list(env = env, extra = extra)
}

# The call a user would type: lmer(<formula>, data = <name>[, REML = FALSE]
# [, weights = w][, offset = off]); fun is lme4::lmer or lmerTest::lmer.
case_call <- function(cs, fun = quote(lmer)) {
  cl <- list(fun, str2lang(cs$formula), data = as.name(cs$dataset))
  if (!cs$reml) cl$REML <- FALSE
  if (!is.null(cs$weights)) cl$weights <- as.name(cs$weights)
  if (!is.null(cs$offset)) cl$offset <- as.name(cs$offset)
  as.call(cl)
}

group_blocks <- function(lst, condsd = NULL) {
  lapply(names(lst), function(g) {
    df <- lst[[g]]
    cols <- colnames(df)
    levs <- rownames(df)
    block <- list(group = g, columns = jstr(cols), levels = jstr(levs),
                  values = jrows(as.matrix(df)))
    if (!is.null(condsd)) {
      sub <- condsd[condsd$grpvar == g, , drop = FALSE]
      sdm <- matrix(NA_real_, length(levs), length(cols))
      sdm[cbind(match(as.character(sub$grp), levs), match(as.character(sub$term), cols))] <- sub$condsd
      if (anyNA(sdm)) stop("condsd incomplete for group ", g)
      block$condsd <- jrows(sdm)
    }
    block
  })
}

timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  value <- expr
  list(value = value, seconds = proc.time()[["elapsed"]] - t0)
}

guard <- function(case, what, expr_fun) {
  res <- tryCatch({
    cond <- with_conditions(expr_fun())
    log_conditions(case, what, cond)
    out <- cond$value
    out$warnings <- jstr(cond$warnings)
    out$messages <- jstr(cond$messages)
    out
  }, error = function(e) {
    message(sprintf("  [%s] %s FAILED: %s", case, what, conditionMessage(e)))
    list(error = conditionMessage(e))
  })
  res
}

inference_for <- function(cs, fit, env) {
  inf <- list()
  if (isTRUE(cs$slow)) {
    inf$confint_profile <- list(skipped = "slow")
  } else {
    inf$confint_profile <- guard(cs$name, "confint profile", function() {
      ci <- confint(fit, method = "profile", oldNames = FALSE)
      jtable(ci)
    })
  }
  inf$confint_wald <- guard(cs$name, "confint Wald", function() {
    ci <- confint(fit, method = "Wald", oldNames = FALSE)
    jtable(ci)
  })
  lt <- guard(cs$name, "lmerTest", function() {
    ft <- eval(case_call(cs, quote(lmerTest::lmer)), env)
    if (!inherits(ft, "lmerModLmerTest")) stop("lmerTest::lmer did not return an lmerModLmerTest object")
    sm <- summary(ft)
    av <- anova(ft)
    list(satterthwaite = jtable(sm$coefficients),
         anova_type3 = jtable(av),
         anova_heading = paste(attr(av, "heading"), collapse = ""),
         summary_text_lmertest = paste(capture.output(print(sm)), collapse = "\n"))
  })
  if (!is.null(lt$error)) {
    inf$satterthwaite <- lt
    inf$anova_type3 <- lt
    inf$summary_text_lmertest <- lt
  } else {
    inf$satterthwaite <- lt$satterthwaite
    inf$anova_type3 <- lt$anova_type3
    inf$anova_type3$heading <- lt$anova_heading
    inf$summary_text_lmertest <- lt$summary_text_lmertest
    inf$lmertest_warnings <- lt$warnings
    inf$lmertest_messages <- lt$messages
  }
  inf
}

# lme4's starting theta: the one mkLmerDevfun leaves in the model before the
# optimizer runs (1s and 0s, or from the group means when every term is (1|g)).
start_theta <- function(cl, env) {
  dcl <- cl
  dcl$devFunOnly <- TRUE
  suppressWarnings(suppressMessages(environment(eval(dcl, env))$pp$theta))
}

run_case <- function(cs) {
  ce <- case_env(cs)
  env <- ce$env
  cl <- case_call(cs)
  fitted <- timed(with_conditions(eval(cl, env)))
  cond <- fitted$value
  log_conditions(cs$name, "lmer", cond)
  fit <- cond$value
  reml <- isREML(fit)
  stopifnot(reml == cs$reml)

  rr <- ranef(fit, condVar = TRUE)
  rr_df <- as.data.frame(rr)
  cf <- coef(fit)
  vc <- as.data.frame(VarCorr(fit))
  ll <- logLik(fit)
  dc <- getME(fit, "devcomp")
  X <- getME(fit, "X")
  dropped <- attr(X, "col.dropped")

  fx <- list(
    name = cs$name,
    dataset = cs$dataset,
    formula = cs$formula,
    reml = reml,
    weights = if (is.null(cs$weights)) NULL else cs$weights,
    offset = if (is.null(cs$offset)) NULL else cs$offset,
    extra_columns = if (length(ce$extra)) lapply(ce$extra, jarr) else empty_obj(),
    extra_columns_code = if (length(cs$extra)) cs$extra else empty_obj(),
    unordered_factors = isTRUE(cs$unordered),
    call = paste(deparse(cl, width.cutoff = 500L), collapse = " "),
    lme4_version = as.character(packageVersion("lme4")),
    r_version = paste(R.version$major, R.version$minor, sep = "."),
    deparsed_formula = paste(deparse(formula(fit)), collapse = ""),
    theta = jarr(getME(fit, "theta")),
    start_theta = jarr(start_theta(cl, env)),
    theta_names = jstr(names(getME(fit, "theta"))),
    lower = jarr(getME(fit, "lower")),
    beta = jarr(fixef(fit)),
    beta_names = jstr(names(fixef(fit))),
    dropped_columns = jstr(names(dropped)),
    se = jarr(sqrt(diag(as.matrix(vcov(fit))))),
    vcov = jrows(as.matrix(vcov(fit))),
    sigma = jnum(sigma(fit)),
    logLik = jnum(as.numeric(ll)),
    df_logLik = attr(ll, "df"),
    AIC = jnum(AIC(fit)),
    BIC = jnum(BIC(fit)),
    deviance_ML = jnum(as.numeric(deviance(fit, REML = FALSE))),
    # the minimized value: deviance for ML, REML criterion for REML.  (Note:
    # fit@optinfo$val is the optimizer's final parameter vector, i.e. theta.)
    objective = jnum(if (reml) dc$cmp[["REML"]] else dc$cmp[["dev"]]),
    optinfo_val = jarr(fit@optinfo$val),
    REMLcrit = if (reml) jnum(REMLcrit(fit)) else NULL,
    devcomp_cmp = jobj(dc$cmp),
    devcomp_dims = as.list(dc$dims),
    df_resid = jnum(df.residual(fit)),
    nobs = nobs(fit),
    ngrps = as.list(ngrps(fit)),
    varcorr = lapply(seq_len(nrow(vc)), function(i) list(
      grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i],
      vcov = jnum(vc$vcov[i]), sdcor = jnum(vc$sdcor[i]))),
    ranef = group_blocks(rr, rr_df),
    coef = group_blocks(cf),
    fitted = jarr(fitted(fit)),
    resid = jarr(residuals(fit)),
    scaled_resid = jarr(residuals(fit, type = "pearson", scaled = TRUE)),
    isSingular = isSingular(fit),
    feval = fit@optinfo$feval,
    optimizer = fit@optinfo$optimizer,
    conv_messages = jstr(nz(fit@optinfo$conv$lme4$messages)),
    optimizer_message = nz(fit@optinfo$message),
    fit_messages = jstr(cond$messages),
    fit_warnings = jstr(cond$warnings),
    summary_text = paste(capture.output(print(summary(fit))), collapse = "\n"),
    print_text = paste(capture.output(print(fit)), collapse = "\n")
  )
  t_inf <- timed(inference_for(cs, fit, env))
  fx$inference <- t_inf$value
  file <- file.path(fixtures_dir, paste0(cs$name, ".json"))
  write_fixture(fx, file)
  message(sprintf("%-24s fit %6.1fs  inference %6.1fs  %8d bytes  %s", cs$name,
                  fitted$seconds, t_inf$seconds, file.size(file),
                  if (length(cond$messages)) paste0("(", length(cond$messages), " fit message(s))") else ""))
  invisible(file)
}

# ---------------------------------------------------------------------------
# likelihood-ratio tests with anova()

lrt_sleepstudy <- function() {
  env <- new.env(parent = globalenv())
  assign("sleepstudy", read_dataset("sleepstudy"), envir = env)
  compare <- function(models, anova_call) {
    conds <- character(0)
    spec <- list()
    for (nm in names(models)) {
      m <- models[[nm]]
      cs <- list(formula = m$formula, dataset = "sleepstudy", reml = m$reml)
      cond <- with_conditions(eval(case_call(cs), env))
      log_conditions("lrt_sleepstudy", nm, cond)
      assign(nm, cond$value, envir = env)
      spec[[nm]] <- list(formula = m$formula, reml = m$reml,
                         fit_messages = jstr(cond$messages))
    }
    cond <- with_conditions(eval(str2lang(anova_call), env))
    log_conditions("lrt_sleepstudy", anova_call, cond)
    a <- cond$value
    list(models = spec,
         call = anova_call,
         anova_messages = jstr(cond$messages),
         table = jtable(a),
         heading = jstr(attr(a, "heading")),
         text = paste(capture.output(print(a)), collapse = "\n"))
  }
  obj <- list(
    name = "lrt_sleepstudy",
    dataset = "sleepstudy",
    lme4_version = as.character(packageVersion("lme4")),
    r_version = paste(R.version$major, R.version$minor, sep = "."),
    random_effects = compare(
      list(fm_corr = list(formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE),
           fm_uncorr = list(formula = "Reaction ~ Days + (Days||Subject)", reml = TRUE)),
      "anova(fm_corr, fm_uncorr)"),
    fixed_effects = compare(
      list(fm_null = list(formula = "Reaction ~ 1 + (Days|Subject)", reml = FALSE),
           fm_days = list(formula = "Reaction ~ Days + (Days|Subject)", reml = FALSE)),
      "anova(fm_null, fm_days)")
  )
  file <- file.path(fixtures_dir, "lrt_sleepstudy.json")
  write_fixture(obj, file)
  message(sprintf("%-24s %8d bytes", "lrt_sleepstudy", file.size(file)))
}

# ---------------------------------------------------------------------------

args <- commandArgs(trailingOnly = TRUE)
t_all <- proc.time()[["elapsed"]]
selected <- if (length(args)) Filter(function(cs) cs$name %in% args, fixture_cases) else fixture_cases
for (cs in selected) {
  tryCatch(run_case(cs), error = function(e) {
    message(sprintf("%-24s FAILED: %s", cs$name, conditionMessage(e)))
    quit(status = 1)
  })
}
if (!length(args) || "lrt_sleepstudy" %in% args) lrt_sleepstudy()
message(sprintf("total %.1f s", proc.time()[["elapsed"]] - t_all))
