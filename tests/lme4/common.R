# Helpers shared by the scripts that write mixedfit's lme4 reference data
# (export_datasets.R, make_fixtures.R, inference_cases.R, inference2_cases.R,
# hard_cases.R).  Each script sources this file from its own directory (the
# --file= of Rscript; tests/lme4 when there is none), in one line:
#
#   source(file.path(dirname(c(sub("--file=", "", grep("^--file=", commandArgs(), value = TRUE)), "tests/lme4/.")[1]), "common.R"))
#
# Scripts run from the repository root.  Defined here:
#   data_dir, fixtures_dir   mixedfit/datasets/data, tests/lme4/fixtures
#   format_num()             exact decimal text of doubles (shortest of 15/17 digits)
#   read_dataset()           a bundled data set read back as an R data.frame
#   json_number_style()      how jnum()/jarr()/... write numbers in this script
#   jnum() jarr() jstr() jobj() jrows() jtable() empty_obj()   JSON pieces
#   write_fixture()          jsonlite::write_json with the fixtures' settings
#   with_conditions()        evaluate, collecting message and warning texts
#   fixture_cases, cases_named()   the models of fixtures/<case>.json

data_dir <- file.path("mixedfit", "datasets", "data")
fixtures_dir <- file.path("tests", "lme4", "fixtures")
if (!dir.exists(data_dir)) stop("run from the repository root (", data_dir, " not found)")

# ---------------------------------------------------------------------------
# exact number text

# Decimal text for doubles that BOTH R and a correctly rounding parser
# (Python, pandas) read back as exactly the same double.
#
# R's own parser (R_strtod) divides in long double and so can round twice:
# e.g. "0.2485454545454545" reads in R as 0x1.fd056636bcc9cp-3 but is really
# nearest to 0x1.fd056636bcc9bp-3.  A string is therefore kept short (15
# significant digits) only when R reads it back as x AND its exact distance to
# x, computed error-free below, is inside x's rounding interval (half the gap
# to the neighbouring doubles, less a 1e-9 relative margin), so every
# correctly rounding parser also lands on x.  Otherwise %.17g is used: the
# 17-digit decimal of x is always well inside x's rounding interval, so both
# parsers read it as x.
two_prod <- function(a, b) {   # Dekker: a*b == p + e exactly (no FMA needed)
  split <- function(v) { c <- 134217729 * v; hi <- c - (c - v); list(hi = hi, lo = v - hi) }
  p <- a * b
  A <- split(a); B <- split(b)
  e <- ((A$hi * B$hi - p) + A$hi * B$lo + A$lo * B$hi) + A$lo * B$lo
  list(p = p, e = e)
}

# The text of x as above; NA and NaN give NA, +-Inf give "Inf" / "-Inf".
format_num <- function(x) {
  x <- as.double(x)
  out <- sprintf("%.15g", x)
  body <- sub("^-", "", out)
  frac <- ifelse(grepl(".", body, fixed = TRUE), sub("^[^.]*[.]", "", body), "")
  digits <- paste0(sub("[.].*$", "", body), frac)
  k <- nchar(frac)
  short <- is.finite(x) & !grepl("[eE]", out) & k <= 22 &
    nchar(sub("^0+", "", digits)) <= 15
  short[short] <- as.numeric(out[short]) == x[short]     # R reads it back as x
  ax <- abs(x)
  test <- short & ax > 0
  if (any(test)) {
    M <- as.numeric(digits[test])                          # integer < 1e15 < 2^53: exact
    P <- as.numeric(paste0("1e", k[test]))                 # 10^k, exact for k <= 22
    tp <- two_prod(ax[test], P)                            # |x| 10^k == p + e exactly
    r <- (M - tp$p) - tp$e                                 # M - p exact (Sterbenz)
    e2 <- floor(log2(ax[test]))
    e2 <- e2 - (2^e2 > ax[test]) + (2^(e2 + 1) <= ax[test])
    # half the gap to the neighbouring doubles (halved below a power of 2);
    # the 1e-9 margin absorbs the rounding of r and r/P
    half_gap <- ifelse(ax[test] == 2^e2, 2^(e2 - 54), 2^(e2 - 53))
    short[test] <- abs(r) / P < half_gap * (1 - 1e-9)
  }
  long <- !is.na(x) & !short
  if (any(long)) out[long] <- sprintf("%.17g", x[long])
  stopifnot(all(is.na(x) | suppressWarnings(as.numeric(out)) == x))
  out[is.na(x)] <- NA_character_
  out
}

# ---------------------------------------------------------------------------
# the bundled data sets, read back exactly as Python reads them

# mixedfit/datasets/data/<name>.csv.gz + <name>.json (column types, factor
# levels in R's order, ordered flags) as the data.frame export_datasets.R wrote.
read_dataset <- function(name, dir = data_dir) {
  meta <- jsonlite::read_json(file.path(dir, paste0(name, ".json")))
  cols <- meta$columns
  classes <- vapply(cols, function(s) switch(s$type, factor = "character",
                                               integer = "integer", numeric = "numeric"),
                    character(1))
  d <- utils::read.csv(file.path(dir, paste0(name, ".csv.gz")),
                       colClasses = unname(classes), na.strings = "",
                       check.names = FALSE, stringsAsFactors = FALSE)
  for (nm in names(cols)) {
    s <- cols[[nm]]
    if (s$type == "factor") {
      d[[nm]] <- factor(d[[nm]], levels = unlist(s$levels), ordered = isTRUE(s$ordered))
    }
  }
  d
}

# ---------------------------------------------------------------------------
# JSON pieces.  Numbers are formatted here and passed to jsonlite verbatim
# (jsonlite alone, digits = NA, stops at 15 significant digits).

.json_style <- new.env()

# How this script writes numbers (each fixture file keeps the style it was
# made with; both read back as R's exact double):
#   digits = "shortest"  format_num(): 15 significant digits where exact, else 17
#   digits = "17"        always %.17g
#   infinity = "null"    NA, NaN and +-Inf as null
#   infinity = "string"  NA and NaN as null, +-Inf as the strings "Inf" / "-Inf"
json_number_style <- function(digits = c("shortest", "17"), infinity = c("null", "string")) {
  .json_style$digits <- match.arg(digits)
  .json_style$infinity <- match.arg(infinity)
  invisible(NULL)
}
json_number_style()

json_num_text <- function(x) {
  x <- as.double(x)
  out <- if (.json_style$digits == "17") sprintf("%.17g", x) else format_num(x)
  out[!is.finite(x)] <- "null"
  if (.json_style$infinity == "string") {
    out[is.infinite(x) & x > 0] <- "\"Inf\""
    out[is.infinite(x) & x < 0] <- "\"-Inf\""
  }
  out
}

verbatim <- function(txt) structure(txt, class = "json")
# a JSON number
jnum <- function(x) {
  if (length(x) != 1) stop("jnum: length ", length(x))
  verbatim(json_num_text(x))
}
# a JSON array of numbers, whatever the length
jarr <- function(x) verbatim(paste0("[", paste(json_num_text(unname(x)), collapse = ","), "]"))
# a JSON array of strings (NA -> null), whatever the length
jstr <- function(x) I(as.character(unname(x)))
# {}
empty_obj <- function() setNames(list(), character(0))
# a JSON object {name: number}
jobj <- function(x) {
  if (length(x) == 0) return(empty_obj())
  setNames(lapply(unname(as.numeric(x)), jnum), names(x))
}
# a numeric matrix as an array of rows
jrows <- function(m) {
  m <- as.matrix(m)
  lapply(seq_len(nrow(m)), function(i) jarr(m[i, ]))
}
# a table (data frame or matrix): rownames (and, with column_names = TRUE,
# the column names), then one array per column (numeric columns as numbers)
jtable <- function(tab, column_names = FALSE) {
  tab <- as.data.frame(tab, check.names = FALSE, stringsAsFactors = FALSE)
  out <- list(rownames = jstr(rownames(tab)))
  if (column_names) out$columns <- jstr(names(tab))
  for (nm in names(tab)) {
    col <- tab[[nm]]
    out[[nm]] <- if (is.numeric(col)) jarr(col) else jstr(col)
  }
  out
}

write_fixture <- function(obj, file) {
  jsonlite::write_json(obj, file, digits = NA, auto_unbox = TRUE, pretty = TRUE,
                       na = "null", null = "null", json_verbatim = TRUE)
}

# ---------------------------------------------------------------------------
# messages and warnings

# Evaluate expr, muffling every message() and warning() it emits and
# collecting their text: `warnings` has the warnings, `messages` the messages
# (trailing newlines dropped) and, with warnings_as_messages = TRUE, the
# warnings too, in the order they came.  With errors = TRUE an error becomes
# the value: its text, of class "lme4_error".
with_conditions <- function(expr, errors = FALSE, warnings_as_messages = TRUE) {
  msgs <- character(0)
  warns <- character(0)
  value <- withCallingHandlers(
    if (errors) {
      tryCatch(expr, error = function(e) structure(conditionMessage(e), class = "lme4_error"))
    } else {
      expr
    },
    message = function(m) {
      msgs <<- c(msgs, sub("\n+$", "", conditionMessage(m)))
      invokeRestart("muffleMessage")
    },
    warning = function(w) {
      if (warnings_as_messages) msgs <<- c(msgs, conditionMessage(w))
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  list(value = value, messages = msgs, warnings = warns)
}

# ---------------------------------------------------------------------------
# the models of the per-case fixtures (make_fixtures.R writes one file per
# case); extra: columns added to the data, as R code; weights / offset: the
# name of such a column; unordered: ordered factors made plain factors; slow:
# no profile intervals

fixture_cases <- list(
  list(name = "sleepstudy_reml", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE),
  list(name = "sleepstudy_ml", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days|Subject)", reml = FALSE),
  list(name = "sleepstudy_uncorr", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days||Subject)", reml = TRUE),
  list(name = "sleepstudy_split", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)", reml = FALSE),
  list(name = "sleepstudy_transform", dataset = "sleepstudy",
       formula = "log(Reaction) ~ Days + I(Days^2) + (1|Subject)", reml = TRUE),
  list(name = "sleepstudy_weights", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days|Subject)", reml = TRUE,
       extra = list(w = "1 + (sleepstudy$Days %% 3)"), weights = "w"),
  list(name = "sleepstudy_offset_term", dataset = "sleepstudy",
       formula = "Reaction ~ Days + offset(off) + (Days|Subject)", reml = FALSE,
       extra = list(off = "2 * sleepstudy$Days")),
  list(name = "sleepstudy_offset_arg", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (Days|Subject)", reml = FALSE,
       extra = list(off = "2 * sleepstudy$Days"), offset = "off"),
  list(name = "sleepstudy_intercept_weighted", dataset = "sleepstudy",
       formula = "Reaction ~ Days + (1|Subject)", reml = TRUE,
       extra = list(w = "1 + (sleepstudy$Days %% 3)", off = "2 * sleepstudy$Days"),
       weights = "w", offset = "off"),
  list(name = "sleepstudy_rankdef", dataset = "sleepstudy",
       formula = "Reaction ~ Days + Days2 + (1|Subject)", reml = TRUE,
       extra = list(Days2 = "2 * sleepstudy$Days")),
  list(name = "sleepstudy_noint", dataset = "sleepstudy",
       formula = "Reaction ~ 0 + Days + (1|Subject)", reml = FALSE),
  list(name = "dyestuff_reml", dataset = "Dyestuff",
       formula = "Yield ~ 1 + (1|Batch)", reml = TRUE),
  list(name = "dyestuff_ml", dataset = "Dyestuff",
       formula = "Yield ~ 1 + (1|Batch)", reml = FALSE),
  list(name = "dyestuff2", dataset = "Dyestuff2",
       formula = "Yield ~ 1 + (1|Batch)", reml = TRUE),
  list(name = "penicillin", dataset = "Penicillin",
       formula = "diameter ~ 1 + (1|plate) + (1|sample)", reml = TRUE),
  list(name = "pastes", dataset = "Pastes",
       formula = "strength ~ 1 + (1|batch/cask)", reml = TRUE),
  list(name = "pastes_colon", dataset = "Pastes",
       formula = "strength ~ 1 + (1|batch) + (1|batch:cask)", reml = FALSE),
  list(name = "cake", dataset = "cake",
       formula = "angle ~ recipe * temp + (1|recipe:replicate)", reml = FALSE,
       unordered = TRUE),
  list(name = "machines_factor_slope", dataset = "Machines",
       formula = "score ~ Machine + (0 + Machine|Worker)", reml = TRUE),
  list(name = "machines_nested", dataset = "Machines",
       formula = "score ~ Machine + (1|Worker/Machine)", reml = TRUE),
  list(name = "hsb82", dataset = "Hsb82",
       formula = "mAch ~ meanses*cses + sector*cses + (cses|school)", reml = TRUE),
  list(name = "chem97", dataset = "Chem97",
       formula = "score ~ gcsecnt + (1|school) + (1|lea)", reml = FALSE, slow = TRUE),
  list(name = "egsingle", dataset = "egsingle",
       formula = "math ~ year + size + female + (year|childid) + (year|schoolid)",
       reml = TRUE, slow = TRUE),
  list(name = "insteval", dataset = "InstEval",
       formula = "y ~ service + (1|s) + (1|d) + (1|dept)", reml = TRUE, slow = TRUE)
)

# the cases of fixture_cases with these names, in this order
cases_named <- function(...) {
  nm <- c(...)
  i <- match(nm, vapply(fixture_cases, `[[`, "", "name"))
  if (anyNA(i)) stop("no such case: ", paste(nm[is.na(i)], collapse = ", "))
  fixture_cases[i]
}
