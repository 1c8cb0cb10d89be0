# Export the data sets bundled with mixedfit from R.
#
# Run from the repository root:
#     Rscript tests/lme4/export_datasets.R
#
# For each data set <name> this writes
#     mixedfit/datasets/data/<name>.csv.gz  gzip CSV; numbers written with the
#                                           shortest of 15/16/17 significant
#                                           digits that reads back bit-identical
#     mixedfit/datasets/data/<name>.json    column types and factor levels in
#                                           R's level order
# and then re-reads every file and checks it is identical() to the R object.

suppressPackageStartupMessages({
  library(lme4)
  library(mlmRev)
  library(jsonlite)
})

out_dir <- file.path("mixedfit", "datasets", "data")
if (!dir.exists(out_dir)) stop("run from the repository root (", out_dir, " not found)")

datasets <- list(
  sleepstudy = "lme4", Dyestuff = "lme4", Dyestuff2 = "lme4",
  Penicillin = "lme4", Pastes = "lme4", cake = "lme4", InstEval = "lme4",
  Machines = "nlme",
  Hsb82 = "mlmRev", Chem97 = "mlmRev", egsingle = "mlmRev"
)

get_dataset <- function(name, pkg) {
  env <- new.env()
  utils::data(list = name, package = pkg, envir = env)
  d <- get(name, envir = env)
  # Machines is an nlme groupedData: keep only the plain data.frame.
  d <- as.data.frame(d)
  attr(d, "formula") <- NULL
  attr(d, "labels") <- NULL
  attr(d, "inner") <- NULL
  attr(d, "outer") <- NULL
  attr(d, "units") <- NULL
  attr(d, "FUN") <- NULL
  attr(d, "order.groups") <- NULL
  class(d) <- "data.frame"
  rownames(d) <- NULL
  d
}

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

column_spec <- function(x) {
  if (is.factor(x)) {
    list(type = "factor", levels = I(levels(x)), ordered = is.ordered(x))
  } else if (is.integer(x)) {
    list(type = "integer")
  } else if (is.numeric(x)) {
    list(type = "numeric")
  } else {
    stop("unsupported column class: ", paste(class(x), collapse = "/"))
  }
}

write_dataset <- function(d, name, pkg) {
  spec <- lapply(d, column_spec)
  txt <- lapply(d, function(x) {
    if (is.factor(x)) as.character(x)
    else if (is.integer(x)) as.character(x)
    else format_num(x)
  })
  txt <- as.data.frame(txt, stringsAsFactors = FALSE, optional = TRUE)
  names(txt) <- names(d)
  is_fac <- which(vapply(d, is.factor, logical(1)))
  csv <- file.path(out_dir, paste0(name, ".csv.gz"))
  con <- gzfile(csv, open = "wb", compression = 9)
  utils::write.table(txt, con, sep = ",", row.names = FALSE, col.names = TRUE,
                     quote = if (length(is_fac)) unname(is_fac) else FALSE,
                     na = "", eol = "\n", qmethod = "double", fileEncoding = "")
  close(con)
  meta <- list(
    name = name,
    source_package = pkg,
    source_version = as.character(utils::packageVersion(pkg)),
    nrow = nrow(d),
    ncol = ncol(d),
    columns = spec
  )
  jsonlite::write_json(meta, file.path(out_dir, paste0(name, ".json")),
                       auto_unbox = TRUE, pretty = TRUE, digits = NA)
  invisible(csv)
}

# Re-read exactly as tests/lme4/make_fixtures.R does.
read_dataset <- function(name) {
  meta <- jsonlite::read_json(file.path(out_dir, paste0(name, ".json")))
  cols <- meta$columns
  classes <- vapply(cols, function(s) switch(s$type, factor = "character",
                                               integer = "integer", numeric = "numeric"),
                    character(1))
  d <- utils::read.csv(file.path(out_dir, paste0(name, ".csv.gz")),
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

for (name in names(datasets)) {
  pkg <- datasets[[name]]
  d <- get_dataset(name, pkg)
  write_dataset(d, name, pkg)
  back <- read_dataset(name)
  if (!identical(back, d)) {
    print(all.equal(back, d))
    stop("data set ", name, " does not read back identically")
  }
  cat(sprintf("%-11s %6d x %2d  %9d bytes csv.gz  %8d bytes json  (read back identical)\n",
              name, nrow(d), ncol(d),
              file.size(file.path(out_dir, paste0(name, ".csv.gz"))),
              file.size(file.path(out_dir, paste0(name, ".json")))))
}
tot <- sum(file.size(list.files(out_dir, full.names = TRUE)))
cat(sprintf("total size of %s: %.1f kB\n", out_dir, tot / 1024))
