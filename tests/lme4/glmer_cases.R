# glmer reference fits for mixedfit's GLMMs (tests/test_glmm.py).
#
# Run from the repository root:
#     Rscript tests/lme4/glmer_cases.R [case ...]
#
# Writes tests/lme4/fixtures/glmer_<case>.json for each case below: lme4's
# deviance, logLik, AIC, BIC, df.resid, beta, SE (lme4's vcov, from the
# finite-difference Hessian), theta, VarCorr, ranef with conditional SDs,
# fitted values and residuals (all of them for small data, else the first 50
# and sums), the summary and print text (summary_lines, print_lines; not summary_text,
# which marks the linear fixtures), messages and warnings, optinfo
# (evaluation counts, derivatives), Wald intervals and predictions.  Bundled
# data sets are read back with read_dataset() (export_datasets.R wrote them);
# simulated data are written into the fixture itself.  About 60 s.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))

# ---------------------------------------------------------------------------
# simulated data (written into the fixture)

sim_offset <- function() {
  set.seed(20240601)
  g <- factor(rep(sprintf("g%02d", 1:40), each = 8))
  x <- round(rnorm(320), 3)
  t <- round(runif(320, 1, 10), 2)
  b <- rnorm(40, sd = 0.4)[as.integer(g)]
  y <- rpois(320, t * exp(-0.5 + 0.3 * x + b))
  data.frame(y = y, x = x, t = t, logt = log(t), g = g)
}

sim_gamma <- function() {
  set.seed(20240602)
  g <- factor(rep(sprintf("g%02d", 1:30), each = 6))
  x <- round(rnorm(180), 3)
  b <- rnorm(30, sd = 0.3)[as.integer(g)]
  mu <- exp(1 + 0.4 * x + b)
  y <- signif(rgamma(180, shape = 4, scale = mu / 4), 6)
  data.frame(y = y, x = x, g = g)
}

sim_singular <- function() {
  set.seed(20240603)
  g <- factor(rep(sprintf("s%02d", 1:20), each = 10))
  x <- round(rnorm(200), 3)
  y <- rbinom(200, 1, plogis(-0.3 + 0.8 * x))
  data.frame(y = y, x = x, g = g)
}

cases <- list(
  list(name = "cbpp", dataset = "cbpp",
       formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", link = "logit", nAGQ = 1, time = TRUE),
  list(name = "cbpp_agq25", dataset = "cbpp",
       formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", link = "logit", nAGQ = 25),
  list(name = "cbpp_probit", dataset = "cbpp",
       formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", link = "probit", nAGQ = 1),
  list(name = "grouseticks", dataset = "grouseticks",
       formula = "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)",
       family = "poisson", link = "log", nAGQ = 1),
  list(name = "grouseticks_obs", dataset = "grouseticks",
       formula = "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
       family = "poisson", link = "log", nAGQ = 1),
  list(name = "verbagg", dataset = "VerbAgg",
       formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
       family = "binomial", link = "logit", nAGQ = 1, time = TRUE),
  list(name = "verbagg_nagq0", dataset = "VerbAgg",
       formula = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
       family = "binomial", link = "logit", nAGQ = 0),
  list(name = "contraception", dataset = "Contraception",
       formula = "use ~ age + I(age^2) + urban + livch + (urban | district)",
       family = "binomial", link = "logit", nAGQ = 1),
  list(name = "poisson_offset", sim = sim_offset,
       formula = "y ~ x + offset(log(t)) + (1 | g)",
       family = "poisson", link = "log", nAGQ = 1),
  list(name = "gamma_log", sim = sim_gamma,
       formula = "y ~ x + (1 | g)", family = "Gamma", link = "log", nAGQ = 1),
  list(name = "cbpp_cloglog", dataset = "cbpp",
       formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
       family = "binomial", link = "cloglog", nAGQ = 1),
  list(name = "invgauss_log", sim = sim_gamma,
       formula = "y ~ x + (1 | g)", family = "inverse.gaussian", link = "log", nAGQ = 1),
  list(name = "singular_binary", sim = sim_singular,
       formula = "y ~ x + (1 | g)", family = "binomial", link = "logit", nAGQ = 1)
)

family_of <- function(case) get(case$family)(link = case$link)

data_record <- function(d) {
  out <- list()
  for (nm in names(d)) {
    x <- d[[nm]]
    out[[nm]] <- if (is.factor(x)) list(levels = jstr(levels(x)), values = jstr(as.character(x)))
                 else jarr(x)
  }
  out
}

some <- function(x, limit = 600) {
  x <- unname(as.numeric(x))
  if (length(x) <= limit) list(all = jarr(x))
  else list(head = jarr(x[1:50]), sum = jnum(sum(x)), sumsq = jnum(sum(x^2)),
            min = jnum(min(x)), max = jnum(max(x)))
}

ranef_record <- function(m) {
  re <- ranef(m, condVar = TRUE)
  out <- list()
  for (g in names(re)) {
    fr <- re[[g]]
    pv <- attr(fr, "postVar")
    sd <- if (is.list(pv)) do.call(cbind, lapply(pv, function(a) sqrt(apply(a, 3, diag))))
          else t(matrix(sqrt(apply(pv, 3, function(a) diag(as.matrix(a)))), nrow = ncol(fr)))
    sd <- matrix(sd, nrow = nrow(fr))
    out[[g]] <- list(levels = jstr(rownames(fr)), columns = jstr(names(fr)),
                     values = jrows(as.matrix(fr)), condsd = jrows(sd))
  }
  out
}

fit_case <- function(case) {
  d <- if (!is.null(case$sim)) case$sim() else read_dataset(case$dataset)
  fam <- family_of(case)
  # the data under their own name, so that the summary's Data: line is lme4's usual one
  data_name <- if (is.null(case$dataset)) "dat" else case$dataset
  env <- new.env()
  assign(data_name, d, envir = env)
  assign("fam", fam, envir = env)
  call <- substitute(glmer(f, data = D, family = fam, nAGQ = k),
                     list(f = as.formula(case$formula), k = case$nAGQ, D = as.name(data_name)))
  res <- with_conditions(eval(call, env))
  m <- res$value
  vc <- as.data.frame(VarCorr(m))
  wald <- confint(m, method = "Wald")
  ss <- summary(m)
  rec <- list(
    name = case$name, family = case$family, link = case$link, nAGQ = case$nAGQ,
    formula = case$formula, data_name = data_name,
    lme4_version = as.character(packageVersion("lme4")), r_version = R.version.string,
    nobs = nobs(m), ngrps = as.list(ngrps(m)),
    deviance = jnum(deviance(m)), logLik = jnum(as.numeric(logLik(m))),
    minus2logLik = jnum(-2 * as.numeric(logLik(m))),
    df_logLik = attr(logLik(m), "df"),
    AIC = jnum(AIC(m)), BIC = jnum(BIC(m)), df_resid = df.residual(m),
    sigma = jnum(sigma(m)),
    beta = jobj(fixef(m)), se = jobj(sqrt(diag(as.matrix(vcov(m))))),
    vcov = jrows(as.matrix(vcov(m))),
    vcov_rx = jrows(as.matrix(suppressWarnings(vcov(m, use.hessian = FALSE)))),
    theta = jobj(getME(m, "theta")),
    varcorr = list(grp = jstr(vc$grp), var1 = jstr(vc$var1), var2 = jstr(vc$var2),
                   vcov = jarr(vc$vcov), sdcor = jarr(vc$sdcor)),
    ranef = ranef_record(m),
    fitted = some(fitted(m)),
    resid_deviance = some(residuals(m, type = "deviance")),
    resid_pearson = some(residuals(m, type = "pearson")),
    resid_response = some(residuals(m, type = "response")),
    resid_working = some(residuals(m, type = "working")),
    predict_link_fixed = some(predict(m, re.form = NA, type = "link")),
    predict_response = some(predict(m, type = "response")),
    pearson_chisq = jnum(sum(residuals(m, type = "pearson")^2)),
    scaled_resid_quantiles = jarr(quantile(residuals(m, "pearson", scaled = TRUE))),
    is_singular = isSingular(m),
    confint_wald = jtable(wald[!is.na(wald[, 1]), , drop = FALSE], column_names = TRUE),
    messages = jstr(res$messages), warnings = jstr(res$warnings),
    conv_messages = jstr(m@optinfo$conv$lme4$messages),
    optinfo = list(optimizer = jstr(m@optinfo$optimizer), feval = m@optinfo$feval,
                   fval = jnum(m@optinfo$val[1]), par = jarr(m@optinfo$val),
                   gradient = if (is.null(m@optinfo$derivs)) NULL else jarr(m@optinfo$derivs$gradient),
                   hessian = if (is.null(m@optinfo$derivs)) NULL else jrows(m@optinfo$derivs$Hessian)),
    fval = jnum(m@devcomp$cmp[["dev"]]),
    summary_lines = jstr(capture.output(print(ss))),
    print_lines = jstr(capture.output(print(m)))
  )
  if (case$nAGQ > 0) {
    # glmer's first stage is the nAGQ = 0 fit: its theta is where the second
    # stage starts PIRLS from (lp0), on which the deviance glmer reports depends
    call0 <- call
    call0$nAGQ <- 0L
    rec$stage1_theta <- jobj(getME(suppressMessages(eval(call0, env)), "theta"))
  }
  if (!is.null(case$sim)) rec$data <- data_record(d)
  if (isTRUE(case$time)) {
    times <- replicate(3, system.time(suppressMessages(eval(call, env)))[["elapsed"]])
    rec$glmer_seconds <- jarr(times)
  }
  if (case$name == "poisson_offset") {
    # the same model with the offset given as an argument
    m2 <- glmer(y ~ x + (1 | g), data = d, family = poisson, offset = log(t))
    rec$offset_arg_deviance <- jnum(-2 * as.numeric(logLik(m2)))
  }
  rec
}

args <- commandArgs(trailingOnly = TRUE)
todo <- if (length(args)) Filter(function(c) c$name %in% args, cases) else cases
for (case in todo) {
  t0 <- proc.time()[["elapsed"]]
  rec <- fit_case(case)
  write_fixture(rec, file.path(fixtures_dir, paste0("glmer_", case$name, ".json")))
  cat(sprintf("%-18s %6.1f s  -2logLik %s\n", case$name, proc.time()[["elapsed"]] - t0,
              unclass(rec$minus2logLik)))
}

# R's family objects at a few points: tests/test_family.py checks each link
# and distribution function against them.
family_points <- function() {
  links <- list(binomial = c("logit", "probit", "cauchit", "log", "cloglog"),
                poisson = c("log", "identity", "sqrt"),
                Gamma = c("inverse", "identity", "log"),
                inverse.gaussian = c("1/mu^2", "inverse", "identity", "log"))
  out <- list()
  for (fam in names(links)) for (link in links[[fam]]) {
    f <- get(fam)(link = link)
    mu <- if (fam == "binomial") c(0.05, 0.3, 0.5, 0.9) else c(0.5, 1.5, 3, 7.25)
    y <- if (fam == "binomial") c(0, 0.25, 1, 0.8) else if (fam == "poisson") c(0, 2, 3, 9)
         else c(0.4, 2, 2.5, 8)
    wt <- c(1, 4, 1, 5)
    n <- if (fam == "binomial") wt else rep(1, 4)
    eta <- f$linkfun(mu)
    dev <- sum(f$dev.resids(y, mu, wt))
    out[[paste(fam, link)]] <- list(
      family = fam, link = link, mu = jarr(mu), y = jarr(y), wt = jarr(wt), n = jarr(n),
      eta = jarr(eta), linkinv = jarr(f$linkinv(eta)), mu_eta = jarr(f$mu.eta(eta)),
      variance = jarr(f$variance(mu)), dev_resids = jarr(f$dev.resids(y, mu, wt)),
      aic = jnum(f$aic(y, n, mu, wt, dev)))
  }
  out
}
if (!length(args) || "families" %in% args) {
  write_fixture(list(lme4_version = as.character(packageVersion("lme4")), r_version = R.version.string,
                     cases = unname(family_points())),
                file.path(fixtures_dir, "glmer_families.json"))
  cat("families written\n")
}

# anova() and predict() of glmer fits (tests/test_glmm.py)
extras <- function() {
  cbpp <- read_dataset("cbpp")
  m1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
  m0 <- glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), cbpp, binomial)
  a <- anova(m0, m1)
  nd <- data.frame(period = factor(c("1", "2", "4", "3"), levels = levels(cbpp$period)),
                   herd = factor(c("1", "7", "15", "new"), levels = c(levels(cbpp$herd), "new")))
  # complete separation: glmer stops in its first PIRLS
  x <- seq(-1, 1, length.out = 200)
  sep <- data.frame(y = as.integer(x > 0), x = x, g = factor(rep(0:19, each = 10)))
  sep_error <- tryCatch(glmer(y ~ x + (1 | g), sep, binomial), error = conditionMessage)
  list(
    lme4_version = as.character(packageVersion("lme4")), r_version = R.version.string,
    separation_error = sep_error,
    anova = list(table = jtable(as.data.frame(a), column_names = TRUE),
                 text = jstr(capture.output(print(a)))),
    newdata = list(period = jstr(as.character(nd$period)), herd = jstr(as.character(nd$herd))),
    predict_link = jarr(predict(m1, nd, allow.new.levels = TRUE)),
    predict_response = jarr(predict(m1, nd, type = "response", allow.new.levels = TRUE)),
    predict_fixed_response = jarr(predict(m1, nd, re.form = NA, type = "response")),
    theta = jobj(getME(m1, "theta")), beta = jobj(fixef(m1)),
    stage1_theta = jobj(getME(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                                    binomial, nAGQ = 0), "theta"))
  )
}
if (!length(args) || "extras" %in% args) {
  write_fixture(extras(), file.path(fixtures_dir, "glmer_extras.json"))
  cat("extras written\n")
}
