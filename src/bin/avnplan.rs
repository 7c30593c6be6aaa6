//! The `avnplan` command line (feature `cli`), as specified in `CONTRACT.md`.
//!
//! Every subcommand reads JSON and writes JSON to stdout or `-o FILE`.
//! Exit status 0 for any valid answer (`no_safe_trajectory` included), 2 for
//! unusable input, misuse or an output that cannot be written, with one line
//! on stderr: `FILE: FIELD: what is wrong`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use avnplan::io::json::{one_line_error, to_json_string, write_json_atomic};
use avnplan::Error;

#[derive(Parser)]
#[command(
    name = "avnplan",
    version,
    about = "Needle trajectory planning for femoral head AVN"
)]
struct Cli {
    /// Worker threads (default: all cores). The output does not depend on it.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Plan needle trajectories for a case.
    Plan {
        /// The case file (avnplan.case/1).
        case: PathBuf,
        /// Write the plan here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write one overlay picture (SVG) per view into this folder.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// C-arm calibration from a fiducial phantom (avnplan.fiducials/1).
    Calibrate {
        /// The fiducials file.
        fiducials: PathBuf,
        /// Write the calibration here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// The 3D model reconstructed from the case's views (avnplan.model/1).
    Reconstruct {
        /// The case file.
        case: PathBuf,
        /// Write the model here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// What was read from a DICOM file (avnplan.dicom-info/1).
    DicomInfo {
        /// The DICOM file.
        file: PathBuf,
        /// Write the report here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// A synthetic case with its truth, meshes and simulated radiographs.
    Phantom {
        /// Seed of the random draw (same seed, same bytes).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Gaussian annotation noise, pixels (one sigma per axis).
        #[arg(long, default_value_t = 0.0)]
        noise_px: f64,
        /// Include the true bone mesh in the case (`bone_mesh`).
        #[arg(long)]
        with_mesh: bool,
        /// Output folder.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// An error with the file it concerns.
struct Failure {
    file: PathBuf,
    error: Error,
}

trait InFile<T> {
    fn in_file(self, file: &Path) -> Result<T, Failure>;
}

impl<T> InFile<T> for avnplan::Result<T> {
    fn in_file(self, file: &Path) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            file: file.to_path_buf(),
            error,
        })
    }
}

fn emit<T: serde::Serialize>(value: &T, output: Option<&Path>) -> Result<(), Failure> {
    match output {
        Some(path) => write_json_atomic(path, value).in_file(path),
        None => {
            let text = to_json_string(value).in_file(Path::new("-"))?;
            println!("{text}");
            Ok(())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Plan { case, output, svg } => {
            let (plan_file, pictures) =
                avnplan::pipeline::plan_file(&case, svg.is_some()).in_file(&case)?;
            if let Some(dir) = &svg {
                avnplan::pipeline::write_pictures(dir, &pictures).in_file(dir)?;
            }
            emit(&plan_file, output.as_deref())
        }
        Command::Calibrate { fiducials, output } => {
            let f: avnplan::io::fiducials::FiducialsFile =
                avnplan::io::json::read_json(&fiducials).in_file(&fiducials)?;
            let cal = avnplan::io::fiducials::calibrate_file(&f).in_file(&fiducials)?;
            emit(&cal, output.as_deref())
        }
        Command::Reconstruct { case, output } => {
            let model = avnplan::pipeline::model_file(&case).in_file(&case)?;
            emit(&model, output.as_deref())
        }
        Command::DicomInfo { file, output } => dicom_info(&file, output.as_deref()),
        Command::Phantom {
            seed,
            noise_px,
            with_mesh,
            output,
        } => avnplan::pipeline::write_phantom(seed, noise_px, with_mesh, &output).in_file(&output),
    }
}

/// `avnplan dicom-info FILE`: exit 0 also when the geometry is incomplete
/// (`carm` absent, `missing` says why), 2 when the file cannot be read as
/// DICOM.
fn dicom_info(file: &Path, output: Option<&Path>) -> Result<(), Failure> {
    let view = avnplan::io::dicom::DicomView::open(file).in_file(file)?;
    emit(&view.info(&file.display().to_string()), output)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Some(n) = cli.threads {
        if n == 0
            || rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .is_err()
        {
            eprintln!("-: --threads: must be a whole number >= 1");
            return ExitCode::from(2);
        }
    }
    // A panic is a bug; it still ends with status 2 and one line.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let msg: String = msg.chars().take(200).collect();
        eprintln!("-: -: internal error (please report): {msg}");
    }));
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => {
            eprintln!("{}", one_line_error(&f.file, &f.error));
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}
