# Reference output of R and lme4 for the formula language and the design,
# for tests/formula/ (through tests/formula/_formula_cases.py) and tests/test_terms.py.
#
# Run from the repository root:
#     Rscript tests/lme4/formula_cases.R
# It writes tests/lme4/fixtures/formula_cases.json with
#   deparse     R's deparse() of formulas
#   terms       attr(terms(f), "term.labels") and the intercept
#   numbers     as.character() of doubles (factor labels of numbers)
#   sort        levels(factor(x)) of strings and numbers (R's ICU collation)
#   matrices    model.matrix() on a small made-up data frame (names and values)
#   designs     lme4::lFormula() on the bundled data sets: X, Z, names, levels,
#               the lme4 term order, rows used, weights, offset

suppressPackageStartupMessages({
  library(lme4)
  library(mlmRev)
  library(jsonlite)
})

out_file <- file.path("tests", "lme4", "fixtures", "formula_cases.json")
if (!dir.exists(dirname(out_file))) stop("run from the repository root")

one_line <- function(f) paste(deparse(f, width.cutoff = 500L), collapse = "")
chr <- function(x) I(as.character(x))  # always a JSON array, even when empty

# ---- deparse ---------------------------------------------------------------
deparse_inputs <- c(
  "Reaction~Days+(Days|Subject)",
  "strength ~ 1 + (1|batch/cask)",
  "y ~ a*b + a/b + a:b + a^b + a%in%b + a%%b + a%/%b + a-b",
  "y ~ I(Days^2) + log(Reaction) + log(x, 2) + poly(x,2) + scale(x, center=FALSE)",
  "Reaction ~ Days + (Days||Subject)",
  "y ~ 0 + x + (0 + x | g)",
  "y ~ -1 + x",
  "log(Reaction) ~ Days + I(Days^2) + (1|Subject)",
  "y ~ `my col` + f(`a b` = 1) + x.y_z + .x + \"s\"",
  "y ~ 1e-3 + 2.50 + 1e6 + 100000 + 123456 + 2L + 0x10 + 1/3",
  "y ~ (a+b)^2 + I(x > 1 & z != 2) + !x + -x^2 + (-x)^2 + -1:2",
  "y ~ x + offset(log(z)) + C(f, contr.sum) + factor(g)",
  "~x",
  "y~x**2"
)
deparse_cases <- lapply(deparse_inputs, function(s)
  list(input = s, deparse = one_line(as.formula(s))))

# ---- terms -----------------------------------------------------------------
terms_inputs <- c(
  "y ~ a*b + c - 1", "y ~ (a+b):(c+d)", "y ~ (a+b)*(c+d)", "y ~ (a+b+c)^2",
  "y ~ (a+b+c)^3 - a:b:c", "y ~ a*b*c", "y ~ b + a:b", "y ~ x/a", "y ~ a/(b+c)",
  "y ~ a %in% x", "y ~ 0 + x + offset(z)", "y ~ a*b - a", "y ~ -1 + x + 1",
  "y ~ log(x) + I(x^2)*f", "y ~ x - 0", "y ~ meanses*cses + sector*cses",
  "y ~ x + y", "y ~ a:b:c + b", "y ~ 1", "y ~ 0", "y ~ (a)"
)
terms_cases <- lapply(terms_inputs, function(s) {
  t <- terms(as.formula(s))
  list(input = s, labels = chr(attr(t, "term.labels")), intercept = attr(t, "intercept") == 1)
})

# ---- number labels and level order ----------------------------------------
numbers <- c(1e5, 123456, 1e15, 1e-4, 0.001, 1234567.1, 0.1 + 0.2, 1/3, 2.5e-7, 100,
             1e16, -2.5, 0.5, 10, 3, 1e-300, 123456789012)
number_cases <- list(input = numbers, as_character = as.character(numbers))

sort_inputs <- list(
  strings = c("b", "B", "a", "A", "a1", "A1", "a10", "a2", "_x", "a-b", "ab", "a b",
              "a.b", "a_b", "ba", "Ba", "bA", "Z9", "z10", "", "(1)", "~x"),
  doubles = c(10, 2, 1e5, 0.5, 2, -3, 123456),
  integers = c(100000L, 2L, 10L, 2L)
)
sort_cases <- lapply(sort_inputs, function(x) list(input = x, levels = levels(factor(x))))

# ---- model.matrix on made-up data -----------------------------------------
set.seed(1)
md <- data.frame(
  a = factor(rep(c("u", "v", "w"), 4)),
  b = factor(rep(c("p", "q"), each = 6)),
  o = factor(rep(c("lo", "mid", "hi", "top"), 3), levels = c("lo", "mid", "hi", "top"),
             ordered = TRUE),
  l = rep(c(TRUE, FALSE, FALSE), 4),
  x = round(rnorm(12), 3),
  z = 1:12
)
matrix_inputs <- c(
  "~ a:b", "~ b + a:b", "~ 0 + a:b", "~ 0 + x + a", "~ x:a", "~ x + x:a", "~ a*b*x",
  "~ 0 + a + b", "~ a + a:b:x", "~ o", "~ o + a:o", "~ l + x", "~ C(a, contr.sum)",
  "~ C(a, contr.helmert) + C(b)", "~ poly(x, 2)", "~ scale(x)", "~ x %in% a", "~ a/x",
  "~ I(x^2) + log(z) + sqrt(z):b", "~ relevel(a, \"w\")", "~ factor(z > 6) + as.numeric(a)",
  "~ (a + b + x)^2", "~ 0 + b:x + a", "~ I(a == \"u\")", "~ I(z %in% c(1, 2, 3))",
  "~ exp(x) + abs(x) + ifelse(x > 0, x, 0)"
)
matrix_cases <- lapply(matrix_inputs, function(s) {
  m <- model.matrix(as.formula(s), md)
  list(input = s, colnames = chr(colnames(m)), values = unname(m))
})
data_columns <- list(
  a = list(values = as.character(md$a), levels = levels(md$a), ordered = FALSE),
  b = list(values = as.character(md$b), levels = levels(md$b), ordered = FALSE),
  o = list(values = as.character(md$o), levels = levels(md$o), ordered = TRUE),
  l = list(values = md$l), x = list(values = md$x), z = list(values = md$z)
)

# ---- lFormula on the bundled data sets ------------------------------------
load_data <- function(name) {
  env <- new.env()
  pkg <- switch(name, Machines = "nlme", Hsb82 = "mlmRev", "lme4")
  utils::data(list = name, package = pkg, envir = env)
  d <- as.data.frame(get(name, envir = env))
  attributes(d)[c("formula", "labels", "inner", "outer", "units", "FUN", "order.groups")] <- NULL
  d
}

# Each design case: data set, formula, optional changes to the data (columns
# replaced or added, given in full so that Python applies the same), optional
# weights / offset column names.
design_inputs <- list(
  list(id = "sleepstudy_corr", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days|Subject)"),
  list(id = "sleepstudy_uncorr", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days||Subject)"),
  list(id = "penicillin", data = "Penicillin",
       formula = "diameter ~ 1 + (1|plate) + (1|sample)"),
  list(id = "pastes_nested", data = "Pastes", formula = "strength ~ 1 + (1|batch/cask)"),
  list(id = "cake_temp", data = "cake",
       formula = "angle ~ recipe * temp + (1|recipe:replicate)"),
  list(id = "cake_ordered", data = "cake",
       formula = "angle ~ recipe * temperature + (1|recipe:replicate)"),
  list(id = "machines_nointercept", data = "Machines",
       formula = "score ~ Machine + (0 + Machine|Worker)"),
  list(id = "machines_slopes", data = "Machines",
       formula = "score ~ Machine + (Machine|Worker)"),
  list(id = "machines_interaction_group", data = "Machines",
       formula = "score ~ Machine + (1|Worker) + (1|Worker:Machine)"),
  list(id = "hsb82", data = "Hsb82",
       formula = "mAch ~ meanses*cses + sector*cses + (cses|school)"),
  list(id = "hsb82_partial_interaction", data = "Hsb82",
       formula = "mAch ~ cses + (1|school:sector)"),
  list(id = "sleepstudy_transforms", data = "sleepstudy",
       formula = "log(Reaction) ~ Days + I(Days^2) + (1|Subject)"),
  list(id = "sleepstudy_transformed_slopes", data = "sleepstudy",
       formula = "Reaction ~ Days + (I(Days^2) + log(Days + 1) | Subject)"),
  list(id = "cake_C_and_factor", data = "cake",
       formula = "angle ~ C(recipe, contr.sum) + factor(temp) + (1|replicate)"),
  list(id = "sleepstudy_ties_reversed", data = "sleepstudy",
       formula = "Reaction ~ Days + (1|Days) + (1|Subject) + (0 + Days|Subject)"),
  list(id = "sleepstudy_numeric_group", data = "sleepstudy",
       formula = "Reaction ~ 1 + (1|Days)"),
  list(id = "sleepstudy_uncorr_interaction", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days * x || Subject)",
       columns = list(x = rep(c(-1, 0, 2), 60))),
  list(id = "sleepstudy_rank_one", data = "sleepstudy",
       formula = "Reaction ~ Days + Days2 + (1|Subject)",
       columns = list(Days2 = 2 * sleepstudy$Days)),
  list(id = "sleepstudy_rank_two", data = "sleepstudy",
       formula = "Reaction ~ Days2 + Days + Days3 + x + (1|Subject)",
       columns = list(Days2 = 2 * sleepstudy$Days, Days3 = sleepstudy$Days + 1,
                      x = rep(c(-1, 0, 2), 60))),
  list(id = "cake_rank_full_dummies", data = "cake",
       formula = "angle ~ recipe:temperature + (1|replicate)"),
  list(id = "sleepstudy_na", data = "sleepstudy",
       formula = "Reaction ~ scale(Days) + (1|Subject)",
       columns = list(Reaction = replace(sleepstudy$Reaction, c(3, 50), NA),
                      Days = replace(sleepstudy$Days, 7, NA),
                      w = replace(rep(c(1, 2, 0.5), 60), 20, NA),
                      o = replace(seq(0, 1, length.out = 180), 30, NA)),
       weights = "w", offset = "o"),
  list(id = "sleepstudy_offsets", data = "sleepstudy",
       formula = "Reaction ~ Days + offset(o2) + offset(log(o3)) + (1|Subject)",
       columns = list(o = seq(0, 1, length.out = 180), o2 = rep(c(1, 3), 90),
                      o3 = rep(c(2, 5, 7), 60)),
       offset = "o"),
  list(id = "machines_drop_level", data = "Machines",
       formula = "score ~ Machine + (1|Worker)",
       columns = list(score = replace(nlme::Machines$score,
                                      nlme::Machines$Worker == "6", NA)))
)

term_z <- function(re, k, n) {
  S <- length(re$cnms[[k]])
  ff <- re$flist[[attr(re$flist, "assign")[k]]]
  Zt <- as.matrix(re$Ztlist[[k]])
  idx <- cbind(rep((as.integer(ff) - 1L) * S, S) + rep(seq_len(S), each = n),
               rep(seq_len(n), S))
  matrix(Zt[idx], n, S)
}

summary_of <- function(m) list(colsums = colSums(m), crossprod = unname(crossprod(m)),
                               head = unname(m[seq_len(min(6, nrow(m))), , drop = FALSE]))

design_cases <- lapply(design_inputs, function(case) {
  d <- load_data(case$data)
  for (nm in names(case$columns)) d[[nm]] <- case$columns[[nm]]
  call <- list(as.formula(case$formula), data = d)
  if (!is.null(case$weights)) call$weights <- as.name(case$weights)
  if (!is.null(case$offset)) call$offset <- as.name(case$offset)
  messages <- character()
  lf <- withCallingHandlers(
    eval(as.call(c(quote(lme4::lFormula), call)), list(d = d), environment()),
    message = function(m) { messages <<- c(messages, conditionMessage(m)); invokeRestart("muffleMessage") })
  fr <- lf$fr
  re <- lf$reTrms
  n <- nrow(fr)
  X <- lf$X
  terms <- lapply(seq_along(re$cnms), function(k) {
    ff <- re$flist[[attr(re$flist, "assign")[k]]]
    list(group = names(re$cnms)[k], label = names(re$Ztlist)[k],
         cnames = chr(re$cnms[[k]]), levels = chr(levels(ff)),
         codes = as.integer(ff) - 1L, z = summary_of(term_z(re, k, n)))
  })
  out <- list(
    id = case$id, data = case$data, formula = case$formula,
    deparse = one_line(lf$formula),
    columns = case$columns, weights = case$weights, offset = case$offset,
    nobs = n, rows = as.integer(rownames(fr)) - 1L,
    response = one_line(lf$formula[[2]]),
    y = list(sum = sum(model.response(fr)), head = head(unname(model.response(fr)))),
    xnames = chr(colnames(X)), dropped = chr(names(attr(X, "col.dropped"))),
    messages = chr(messages), X = summary_of(X), terms = terms
  )
  w <- model.weights(fr)
  if (!is.null(w)) out$prior_weights <- unname(w)
  o <- model.offset(fr)
  if (!is.null(o)) out$offset_values <- unname(o)
  out
})

out <- list(
  r_version = paste(R.version$major, R.version$minor, sep = "."),
  lme4_version = as.character(packageVersion("lme4")),
  deparse = deparse_cases, terms = terms_cases, numbers = number_cases,
  sort = sort_cases, matrix_data = data_columns, matrices = matrix_cases,
  designs = design_cases
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null",
                  pretty = FALSE), out_file)
cat("wrote", out_file, "\n")
