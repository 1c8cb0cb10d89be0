# Data sets that mixedfit does not bundle, exported from R for benchmarks/run.py.
#
#   Rscript benchmarks/r_data.R NAME DIR
#
# writes DIR/manifest.json plus one raw little-endian binary per column, in the
# format of benchmarks/common.py (float64; int32; factors as 1-based int32 codes
# with their levels in the manifest), so that every process -- mixedfit, the
# Python peers and lme4 -- fits bit-identical columns.  Response factors with
# levels N/Y become numeric 0/1 (glmer treats the second level of a factor
# response as success, so the fit is the same) because the Python libraries
# take a numeric response.

suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
})

yes01 <- function(f) as.numeric(f == "Y")

datasets <- list(
  Oxboys = function() {
    d <- nlme::Oxboys
    # nlme's Subject is an ordered factor (ordered by height); as a grouping
    # factor only its levels matter, so keep them, unordered
    # age2: age^2 for the Python peers, whose formulas take no I(age^2)
    data.frame(height = d$height, age = d$age, age2 = d$age^2,
               Subject = factor(as.character(d$Subject), levels = levels(d$Subject)))
  },
  cbpp = function() {
    d <- lme4::cbpp
    # prop: the proportion the Python peers fit (with prior weights size) for want of cbind()
    data.frame(incidence = d$incidence, size = d$size, prop = d$incidence / d$size,
               period = d$period, herd = d$herd)
  },
  VerbAgg = function() {
    d <- lme4::VerbAgg
    data.frame(r2 = yes01(d$r2), Anger = as.numeric(d$Anger), Gender = d$Gender,
               btype = d$btype, situ = d$situ, id = d$id, item = d$item)
  },
  Contraception40 = function() {
    # mlmRev's Contraception (1,934 women in 60 districts) replicated 40 times,
    # each replicate with its own districts: 77,360 rows, 2,400 districts
    d <- mlmRev::Contraception
    k <- 40L
    rep_id <- rep(seq_len(k), each = nrow(d))
    dd <- d[rep(seq_len(nrow(d)), k), ]
    district <- sprintf("r%02d.%s", rep_id, as.character(dd$district))
    lev <- as.vector(outer(levels(d$district), seq_len(k),
                           function(l, r) sprintf("r%02d.%s", r, l)))
    # urbanY: urban as its 0/1 treatment dummy, for the Python peers that take no
    # factor inside a random-effects term
    data.frame(use = yes01(dd$use), age = dd$age, age2 = dd$age^2, urban = dd$urban,
               urbanY = as.numeric(dd$urban == "Y"), livch = dd$livch,
               district = factor(district, levels = lev), row.names = NULL)
  },
  grouseticks = function() {
    d <- lme4::grouseticks
    # cHEIGHT: HEIGHT centred (lme4's ?grouseticks), shipped with the data
    data.frame(TICKS = d$TICKS, YEAR = d$YEAR, cHEIGHT = d$cHEIGHT, BROOD = d$BROOD,
               INDEX = d$INDEX, LOCATION = d$LOCATION)
  }
)

write_manifest <- function(d, dir, name) {
  dir.create(dir, recursive = TRUE, showWarnings = FALSE)
  cols <- vector("list", ncol(d))
  for (i in seq_along(d)) {
    v <- d[[i]]
    path <- file.path(normalizePath(dir), sprintf("col%03d.bin", i - 1L))
    spec <- list(name = names(d)[i], file = path)
    con <- file(path, "wb")
    if (is.factor(v)) {
      writeBin(as.integer(v), con, size = 4, endian = "little")
      spec$type <- "factor"
      spec$levels <- I(levels(v))
      spec$ordered <- is.ordered(v)
    } else if (is.integer(v)) {
      writeBin(v, con, size = 4, endian = "little")
      spec$type <- "integer"
    } else {
      writeBin(as.double(v), con, size = 8, endian = "little")
      spec$type <- "numeric"
    }
    close(con)
    cols[[i]] <- spec
  }
  man <- list(case = name, nrow = nrow(d), columns = cols, bundled_csv = NULL, bundled_json = NULL)
  writeLines(toJSON(man, auto_unbox = TRUE, null = "null", pretty = TRUE),
             file.path(dir, "manifest.json"))
}

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2L || !args[1] %in% names(datasets))
  stop("usage: Rscript r_data.R NAME DIR; NAME one of ", paste(names(datasets), collapse = ", "))
write_manifest(datasets[[args[1]]](), args[2], args[1])
