//! `--kds-url`, `--pccs-url`, `--endorsement-cache` (shared by `serve`, `evidence` and
//! `endorsements fetch`) and `veil-server endorsements fetch|show`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use veil_attest::UnixTime;
use veil_attest::snp::Product;
use veil_server::confidential::{self, Tee};
use veil_server::endorsements::{
    AMD_KDS_URL, Clock, DiskCache, EndorsementConfig, Endorser, Entry, Freshness, INTEL_PCS_URL,
    Request, SystemClock, default_cache_dir,
};

use crate::{TeeArg, TeeArgs};

/// Where endorsements are fetched from when the host supplies none.
#[derive(clap::Args, Debug)]
pub(crate) struct EndorseArgs {
    /// AMD's Key Distribution Service, or a mirror with its paths: SEV-SNP VCEKs, the
    /// ASK/ARK chain and the CRL are fetched from here when the host supplies no
    /// certificates and --snp-cert-dir is not given.
    #[arg(long, value_name = "URL", default_value = AMD_KDS_URL)]
    kds_url: String,
    /// Intel's PCS, or a PCCS in your network (its v4 API): TDX collateral is fetched from
    /// here when --tdx-collateral is not given.
    #[arg(long, value_name = "URL", default_value = INTEL_PCS_URL)]
    pccs_url: String,
    /// Endorsement cache [default: $XDG_CACHE_HOME/veil/endorsements, else
    /// ~/.cache/veil/endorsements].
    #[arg(long, value_name = "DIR")]
    endorsement_cache: Option<PathBuf>,
    /// The product of SEV-SNP reports that do not name it (report version 2).
    #[arg(long, value_enum)]
    snp_product: Option<ProductArg>,
    /// Never fetch endorsements: only the host's and the files given are used.
    #[arg(long)]
    no_endorsement_fetch: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProductArg {
    Milan,
    Genoa,
    Turin,
}

impl From<ProductArg> for Product {
    fn from(p: ProductArg) -> Self {
        match p {
            ProductArg::Milan => Self::Milan,
            ProductArg::Genoa => Self::Genoa,
            ProductArg::Turin => Self::Turin,
        }
    }
}

impl EndorseArgs {
    /// The endorser these arguments describe, or `None` (simulated, or fetching disabled).
    pub(crate) fn endorser(&self, tee: Tee) -> anyhow::Result<Option<Arc<Endorser>>> {
        if self.no_endorsement_fetch || tee == Tee::Simulated {
            return Ok(None);
        }
        let dir = self
            .endorsement_cache
            .clone()
            .unwrap_or_else(default_cache_dir);
        let mut cfg = EndorsementConfig::new(dir);
        cfg.kds_url = self.kds_url.clone();
        cfg.pccs_url = self.pccs_url.clone();
        cfg.snp_product = self.snp_product.map(Product::from);
        Ok(Some(
            Endorser::new(cfg, Arc::new(SystemClock))
                .context("starting the endorsement fetcher")?,
        ))
    }
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum EndorsementsCommand {
    /// Produce evidence once, so that the endorsements it needs are fetched (or taken from
    /// the cache while fresh) and cached; then show the cache.
    Fetch {
        /// Backend (`auto` detects).
        #[arg(long, value_enum, default_value = "auto")]
        tee: TeeArg,
        #[command(flatten)]
        tee_options: TeeArgs,
    },
    /// Show what is cached: each set's request, sources, validity window and state now.
    Show {
        /// Endorsement cache [default: as for `fetch`].
        #[arg(long, value_name = "DIR")]
        endorsement_cache: Option<PathBuf>,
    },
}

pub(crate) fn endorsements(command: EndorsementsCommand) -> anyhow::Result<()> {
    match command {
        EndorsementsCommand::Fetch { tee, tee_options } => {
            let tee = Tee::from(tee);
            let endorser = tee_options
                .endorse
                .endorser(tee)?
                .context("nothing to fetch: --no-endorsement-fetch or --tee simulated")?;
            let opts = tee_options.options_with(Some(endorser.clone()));
            let (attester, why) = confidential::attester(tee, &opts)?;
            eprintln!("veil-server: backend {} ({why})", attester.name());
            // Any REPORT_DATA will do: the evidence is only the key to its endorsements.
            attester
                .attest(&[0u8; 64])
                .context("producing evidence to fetch its endorsements")?;
            show(endorser.cache())
        }
        EndorsementsCommand::Show { endorsement_cache } => show(&DiskCache::new(
            endorsement_cache.unwrap_or_else(default_cache_dir),
        )),
    }
}

fn show(cache: &DiskCache) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let entries = cache.list()?;
    println!("cache {}", cache.dir().display());
    if entries.is_empty() {
        println!("(empty)");
    }
    for e in entries {
        match e {
            Ok(e) => print_entry(&e, now),
            Err(why) => println!("unreadable: {why}"),
        }
    }
    Ok(())
}

fn print_entry(e: &Entry, now: u64) {
    let t = |s: u64| UnixTime(s).to_rfc3339();
    let what = match &e.request {
        Request::Snp { product, path } => format!("SEV-SNP {product} VCEK {path}"),
        Request::Tdx { fmspc, ca } => format!("TDX FMSPC {fmspc}, PCK {ca} CA"),
        _ => "unknown".to_owned(),
    };
    let state = match e.freshness(now) {
        Freshness::Fresh => "fresh",
        Freshness::Due => "due for refresh",
        Freshness::Expired => "EXPIRED (not served)",
    };
    println!("{}: {what}", e.request.key());
    println!(
        "  valid {} .. {}; fetched {}; refresh {}; {state}",
        t(e.not_before),
        t(e.expires),
        t(e.fetched_at),
        t(e.refresh_at)
    );
    for s in &e.sources {
        println!("  from {s}");
    }
}
