# Reference output of the R formatting primitives that lme4's printing uses,
# for tests/test_rformat.py (mixedfit/rformat.py re-implements them).
#
# Run from the repository root:
#     Rscript tests/lme4/rformat_cases.R
# It writes tests/lme4/fixtures/rformat_cases.json.
#
# Numbers are stored as C99 hex floats (sprintf("%a")) so they are read back
# bit-identical; "NA", "NaN", "Inf" and "-Inf" stand for themselves.
# Printed output is captured byte for byte through sink(), so trailing spaces
# and the final newline are part of the expected text.

suppressPackageStartupMessages(library(jsonlite))

out_file <- file.path("tests", "lme4", "fixtures", "rformat_cases.json")
if (!dir.exists(dirname(out_file))) stop("run from the repository root")

options(digits = 7, scipen = 0, width = 80, OutDec = ".")
set.seed(20240501)

hex <- function(x) {
  vapply(x, function(v) {
    if (is.na(v) && !is.nan(v)) "NA"
    else if (is.nan(v)) "NaN"
    else if (is.infinite(v)) if (v > 0) "Inf" else "-Inf"
    else sprintf("%a", v)
  }, "", USE.NAMES = FALSE)
}

printed <- function(expr) {
  f <- tempfile()
  con <- file(f, open = "wb")
  sink(con)
  on.exit({ sink(); close(con) })
  force(expr)
  sink()
  close(con)
  on.exit()
  txt <- readChar(f, file.size(f), useBytes = TRUE)
  Encoding(txt) <- "UTF-8"
  txt
}

# ---- test vectors ----------------------------------------------------------
fixed_vectors <- list(
  0, 1, -1, 0.5, 5.922, 24.741, 612.0954, 35.0716, 654.9405, c(612.0954, 35.0716, 654.9405),
  c(24.74065, 5.922138, 25.59182), 0.0001234, 123456789, 1e-10, 1e15, 1e5, 1e-5, 123456,
  1234567, 0.1 + 0.2, 1/3, 2/3, pi, -pi, exp(1) * 1e-20, 1e100, 1e-100, 1.5e-300,
  9996, 99999, 999999, 9999999, 0.99996, 0.15, 0.25, 0.35, 2.5, 1e22, 1e23, 1e27, 1e28,
  c(1, 10, 100), c(1.5, 2, 2.25), c(-1, 0.001), c(1e-10, 1), c(1e10, 1), c(123456789, 1e-10),
  c(NA, 1.5), c(NA, NA), c(NaN, 1), c(Inf, -Inf, 1), c(-Inf, 2.5), c(0, 0),
  c(251.405104848485, 10.467285959596), c(6.82451806, 1.54578643),
  c(-3.95356735, -0.46338899, 0.02311426, 0.46337608, 5.17925417),
  c(1763.9393, 1783.0971, -875.9697, 1751.9393, 174), c(36.838, 6.771),
  c(0.0000123, 0.5), c(-0.000001, 1000), c(100, 2e-16), 2.220446e-16, 4.94e-324,
  c(0.07, 1), c(-0.138, 1), c(5.666, 0.678), c(45, 225, 17.000001),
  c(1e5, 123456.7), 100000, 1234567.1, 0.1, 0.123456789012345, 12345.6789,
  c(-1.5, NA, 3), 1e-15, 1e-16, 99.99, 99.995, 0.0009999, 5e-5, 1e4, 123456.5,
  c(33.12222, -1.47778, 6.43033, 0.08765), 2^52 + 0.5, 2^53, -2^60
)
random_vectors <- lapply(1:150, function(i) {
  n <- sample(1:6, 1)
  mag <- sample(-12:12, n, replace = TRUE)
  v <- runif(n, -10, 10) * 10^mag
  keep <- sample(1:10, 1)
  v <- signif(v, keep)
  if (runif(1) < 0.1) v[sample(n, 1)] <- 0
  v
})
narrow_vectors <- lapply(1:100, function(i) {
  n <- sample(1:5, 1)
  round(rnorm(n, sd = 10^sample(-3:3, 1)), sample(0:6, 1))
})
vectors <- lapply(c(fixed_vectors, random_vectors, narrow_vectors), as.numeric)

# ---- format() ------------------------------------------------------------
# one entry per vector: its hex values and format()'s output per setting
format_cases <- lapply(seq_along(vectors), function(k) {
  v <- vectors[[k]]
  settings <- expand.grid(digits = c(1, 2, 3, 4, 5, 7, 10, 15, 16, 17, 22), nsmall = 0L)
  if (k %% 3 == 1) settings <- rbind(settings, expand.grid(digits = c(3, 7), nsmall = 1:3))
  list(x = hex(v), results = lapply(seq_len(nrow(settings)), function(i) {
    d <- settings$digits[i]
    ns <- settings$nsmall[i]
    list(digits = d, nsmall = ns, out = format(v, digits = d, nsmall = ns))
  }))
})

# ---- round(), signif(), zapsmall() ----------------------------------------
round_x <- c(0.15, 0.25, 0.35, 2.5, 3.5, -2.5, 1.005, -1.005, 0.285, 2.675, 1234.5678,
             0.1 + 0.2, 280.675000000001, 5.5e-10, 123456.785, 1e300, 1e-300,
             unlist(random_vectors), unlist(narrow_vectors), (0:200) / 200 + 0.0005,
             (1:100) * 0.005, -(1:50) * 0.0125)
round_cases <- list(x = hex(round_x), results = lapply(
  c(-2, -1, 0, 1, 2, 3, 4, 5, 7, 2.4, 3.6),
  function(d) list(digits = d, out = hex(round(round_x, d)))))
signif_cases <- list(x = hex(round_x), results = lapply(
  c(1, 2, 3, 4, 6, 10, 15),
  function(d) list(digits = d, out = hex(signif(round_x, d)))))
zap_cases <- lapply(c(vectors[sapply(vectors, function(v) !anyNA(v) && all(is.finite(v)))]),
                    function(v) list(x = hex(v), digits = 5, out = hex(zapsmall(v, 5))))

# ---- quantile() -----------------------------------------------------------
quantile_cases <- lapply(c(1, 2, 3, 5, 7, 10, 30, 101, 180), function(n) {
  v <- rnorm(n)
  list(x = hex(v), out = hex(unname(quantile(v))))
})

# ---- formatC() ------------------------------------------------------------
formatc_cases <- list()
for (v in vectors[1:80]) {
  for (spec in list(list(NULL, NULL, NULL, ""), list(3L, NULL, "f", ""), list(3L, 10L, "f", ""),
                    list(4L, NULL, "e", ""), list(4L, 12L, "g", "-"), list(NULL, 8L, "g", ""),
                    list(5L, NULL, "g", "#"), list(2L, 6L, "E", "0"), list(NULL, 5L, "d", ""))) {
    v2 <- if (identical(spec[[3]], "d")) v[is.finite(v) & abs(v) < 2e9] else v
    if (!length(v2)) next
    formatc_cases[[length(formatc_cases) + 1]] <- list(
      x = hex(v2), digits = spec[[1]], width = spec[[2]], format = spec[[3]], flag = spec[[4]],
      out = formatC(v2, digits = spec[[1]], width = spec[[2]], format = spec[[3]], flag = spec[[4]]))
  }
}

# ---- format.pval() --------------------------------------------------------
pval_vectors <- list(c(0.0123, 1e-20, 0.5), 1e-20, c(0.05, 0.001, 0.5), c(3.78e-08, 0.5366),
                     c(2e-16, 1e-17, 0.9), c(NA, 0.01), c(0.000123, 0.0456), 0.1,
                     c(1e-5, 1e-300, 0.2), c(0.00331, 0.0405, 0.53659, 3.7841e-08, 1e-20))
for (i in 1:40) pval_vectors[[length(pval_vectors) + 1]] <- 10^runif(sample(1:5, 1), -20, 0)
pval_cases <- list()
for (v in pval_vectors) for (d in c(1, 2, 3, 4, 5)) {
  pval_cases[[length(pval_cases) + 1]] <- list(x = hex(v), digits = d, out = format.pval(v, digits = d))
}

# ---- print() of named numeric vectors --------------------------------------
named_cases <- list()
for (v in vectors) {
  if (!length(v)) next
  nm <- c("Min", "1Q", "Median", "3Q", "Max", "extra")[seq_along(v)]
  for (d in c(3, 4, 7)) {
    named_cases[[length(named_cases) + 1]] <- list(
      x = hex(v), names = nm, digits = d, out = printed(print(setNames(v, nm), digits = d)))
  }
}
long <- setNames(rnorm(30) * 100, paste0("coefficient", 1:30))
named_cases[[length(named_cases) + 1]] <- list(
  x = hex(long), names = names(long), digits = 4, out = printed(print(long, digits = 4)))

# ---- printCoefmat() -------------------------------------------------------
coefmat_cases <- list()
add_coefmat <- function(m, digits) {
  coefmat_cases[[length(coefmat_cases) + 1]] <<- list(
    x = lapply(seq_len(nrow(m)), function(i) hex(m[i, ])), rownames = rownames(m),
    colnames = colnames(m), digits = digits, out = printed(printCoefmat(m, digits = digits)))
}
mk <- function(est, se, rn) {
  m <- cbind(Estimate = est, `Std. Error` = se, `t value` = est / se)
  rownames(m) <- rn
  m
}
add_coefmat(mk(c(251.405104848485, 10.467285959596), c(6.82451806, 1.54578643),
               c("(Intercept)", "Days")), 4)
add_coefmat(mk(5.6656, 0.67838, "(Intercept)"), 4)
add_coefmat(mk(c(1e-8, 2.5, -3000), c(1e-9, 0.1, 250), c("a", "b", "c")), 4)
add_coefmat(mk(c(0.00001, 12), c(0.3, 1), c("tiny", "big")), 4)
add_coefmat(mk(c(0, 1.5), c(1, 0.5), c("zero", "x")), 4)
add_coefmat(mk(c(123456.7, -0.5), c(1000, 0.02), c("huge", "small")), 3)
for (i in 1:40) {
  p <- sample(1:15, 1)
  est <- rnorm(p) * 10^sample(-4:4, 1)
  se <- abs(rnorm(p)) * 10^sample(-4:2, 1) + 1e-12
  add_coefmat(mk(est, se, paste0("x", seq_len(p))), sample(c(3, 4, 5), 1))
}
mkp <- function(est, se, df, rn) {
  tv <- est / se
  m <- cbind(Estimate = est, `Std. Error` = se, df = df, `t value` = tv,
             `Pr(>|t|)` = 2 * pt(abs(tv), df, lower.tail = FALSE))
  rownames(m) <- rn
  m
}
add_coefmat(mkp(c(251.405104848485, 10.467285959596), c(6.82451806, 1.54578643), c(17, 17),
                c("(Intercept)", "Days")), 4)
add_coefmat(mkp(c(1, 0.1), c(10, 1), c(5.5, 20.2), c("a", "b")), 4)
add_coefmat(mkp(c(33, -1.5, 6.4), c(1.7, 2.4, 1.1), c(45, 45, 225), c("i", "r", "t")), 4)
na_mat <- mkp(c(2.5, NA, -0.25), c(0.5, NA, 0.125), c(10, NA, 30), c("a", "dropped", "c"))
add_coefmat(na_mat, 4)
na_mat[1, 5] <- NA
add_coefmat(na_mat, 4)
add_coefmat(mk(c(1.5, NA), c(0.5, NA), c("kept", "dropped")), 4)
add_coefmat(mkp(c(0.1, 0.2), c(1, 2), c(5, 5), c("ns1", "ns2")), 4)
for (i in 1:30) {
  p <- sample(1:12, 1)
  est <- rnorm(p, sd = 3) * 10^sample(-3:3, 1)
  se <- abs(rnorm(p)) * 10^sample(-3:2, 1) + 1e-12
  add_coefmat(mkp(est, se, runif(p, 2, 300), paste0("term", seq_len(p))), sample(c(3, 4, 5), 1))
}

# ---- abbreviate() ---------------------------------------------------------
abbr_names <- list(
  c("(Intercept)", "Days"), c("(Intercept)", "recipeB", "recipeC", "temperature.L",
  "temperature.Q", "temperature.C", "temperature^4", "temperature^5", "recipeB:temperature.L",
  "recipeC:temperature.L", "recipeB:temperature.Q", "recipeC:temperature.Q"),
  c("(Intercept)", "sexM", "age", "sexM:age", "I(age^2)", "log(dose + 1)"),
  c("alpha beta", "alpha gamma", "aeiou", "AEIOU", "abc def ghi jkl"),
  c("x1", "x2", "x10", "longname_one", "longname_two", "longname_three"),
  c("ChemistryScore", "GenderMale", "age_centered", "lrt", "cs", "x.y.z"),
  c("(Intercept)", "poly(x, 2)1", "poly(x, 2)2", "factor(g)b", "factor(g)c"))
abbr_cases <- list()
for (nm in abbr_names) for (ml in c(1, 4, 6, 11)) {
  abbr_cases[[length(abbr_cases) + 1]] <- list(
    names = nm, minlength = ml, out = unname(abbreviate(nm, minlength = ml)))
}

# ---- print() of character matrices -----------------------------------------
charmat_cases <- list()
add_charmat <- function(m, right) {
  charmat_cases[[length(charmat_cases) + 1]] <<- list(
    x = lapply(seq_len(nrow(m)), function(i) unname(m[i, ])),
    rownames = if (is.null(rownames(m))) NULL else rownames(m),
    colnames = if (is.null(colnames(m))) NULL else colnames(m),
    right = right, out = printed(print(m, quote = FALSE, right = right)))
}
m1 <- matrix(c("Subject", "", "Residual", "(Intercept)", "Days", "", "612.10", " 35.07", "654.94",
               "", "0.07", ""), 3, 4, dimnames = list(c("", "", ""), c("Groups", "Name", "Variance", "Corr")))
add_charmat(m1, FALSE)
add_charmat(m1, TRUE)
m2 <- matrix(c("-0.138", "a", "bb", "ccc"), 2, 2, dimnames = list(c("Days", "x"), c("(Intr)", "Days")))
add_charmat(m2, FALSE)
wide <- matrix(format(round(rnorm(17 * 16), 3), nsmall = 3), 17, 16,
               dimnames = list(paste0("term", 1:17), abbreviate(paste0("coefficient", 1:16), 6)))
add_charmat(wide, FALSE)
add_charmat(wide, TRUE)
verywide <- matrix(c(strrep("x", 85), "y", "z", strrep("w", 40)), 2, 2,
                   dimnames = list(c("r1", "r2"), c("c1", "c2")))
add_charmat(verywide, FALSE)
noname <- matrix(c("a", "bbb", "cc", "d"), 2, 2)
add_charmat(noname, FALSE)

# ---- strwrap() and cat(fill = TRUE) -----------------------------------------
strwrap_cases <- list()
texts <- c("Linear mixed model fit by REML. t-tests use Satterthwaite's method",
           "Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's method",
           "Linear mixed model fit by REML. t-tests use Kenward-Roger's method",
           "short", "a b  c. d  e? f", paste(rep("word", 40), collapse = " "))
for (tx in texts) for (w in c(10, 30, 78)) {
  strwrap_cases[[length(strwrap_cases) + 1]] <- list(
    x = tx, width = w, indent = 0, exdent = 2, out = strwrap(tx, width = w, exdent = 2))
}
cat_cases <- list()
add_cat <- function(objs, sep) {
  cat_cases[[length(cat_cases) + 1]] <<- list(
    objects = lapply(objs, as.list), sep = sep,
    out = printed(do.call(cat, c(objs, list(sep = sep, fill = TRUE)))))
}
add_cat(list("Number of obs: 180, groups: ", "Subject, 18"), " ")
add_cat(list("Number of obs: 180, groups: ",
             paste(paste0("factor", 1:9, ", ", 10 * (1:9)), collapse = "; ")), " ")
add_cat(list(strwrap("Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's method",
                     width = 78, exdent = 2), " [", "lmerModLmerTest", "]"), "")
add_cat(list("Linear mixed model fit by REML. t-tests use Satterthwaite's method", " [",
             "lmerModLmerTest", "]"), "")
add_cat(list("Formula:", paste(rep("x", 75), collapse = "")), " ")
add_cat(list("Formula:", c("y ~ aaaaaaaaaa + bbbbbbbbbb + cccccccccc + dddddddddd + eeeeeeeeee + ",
                           "    ffffffffff + (1 | g)")), " ")

# ---- lme4's note instead of a correlation matrix (p > 12, on stderr) ---------
suppressPackageStartupMessages(library(lme4))
cake_fit <- lmer(angle ~ recipe * temperature + (1 | recipe:replicate), data = cake, REML = FALSE)
note <- character()
withCallingHandlers(
  invisible(capture.output(print(summary(cake_fit)))),
  message = function(m) {
    note <<- c(note, conditionMessage(m))
    invokeRestart("muffleMessage")
  })
cor_note <- list(p = length(fixef(cake_fit)), name = "summary(cake_fit)",
                 out = paste(note, collapse = ""))

res <- list(cor_note = cor_note, format = format_cases, round = round_cases, signif = signif_cases,
            zapsmall = zap_cases, quantile = quantile_cases, formatC = formatc_cases,
            format_pval = pval_cases, print_named = named_cases, printCoefmat = coefmat_cases,
            abbreviate = abbr_cases, char_matrix = charmat_cases, strwrap = strwrap_cases,
            cat_fill = cat_cases)
writeLines(toJSON(res, auto_unbox = TRUE, null = "null", pretty = FALSE), out_file, useBytes = TRUE)
cat("wrote", out_file, "\n")
