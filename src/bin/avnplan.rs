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
    /// Intra-operative check of a needle seen in two or more views
    /// (avnplan.needle/1) against the plan (avnplan.check/1 out).
    Check {
        /// The case file.
        case: PathBuf,
        /// The plan file (unknown fields are ignored).
        plan: PathBuf,
        /// The needle file.
        needle: PathBuf,
        /// Write the check here instead of stdout.
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
        /// Build the case around this femur mesh (STL, OBJ or PLY, mm)
        /// instead of a synthetic bone.
        #[arg(long)]
        mesh: Option<PathBuf>,
        /// With `--mesh`: give the case's bone mesh in its own frame
        /// (`bone_mesh.frame = "own"`, moved by a random rigid motion; the
        /// truth holds `world_from_mesh`).
        #[arg(long, requires = "mesh")]
        own_frame: bool,
        /// Output folder.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Register a bone mesh given in its own frame to the case's views
    /// (avnplan.registration/1).
    Register {
        /// The case file (its `bone_mesh.frame` must be "own").
        case: PathBuf,
        /// Write the registration here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
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
        Command::Check {
            case,
            plan,
            needle,
            output,
        } => run_check(&case, &plan, &needle, output.as_deref()),
        Command::DicomInfo { file, output } => dicom_info(&file, output.as_deref()),
        Command::Phantom {
            seed,
            noise_px,
            with_mesh,
            mesh,
            own_frame,
            output,
        } => match mesh {
            Some(mesh) => phantom_around_mesh(seed, noise_px, with_mesh, own_frame, &mesh, &output),
            None => avnplan::pipeline::write_phantom(seed, noise_px, with_mesh, &output)
                .in_file(&output),
        },
        Command::Register { case, output } => register(&case, output.as_deref()),
    }
}

fn phantom_around_mesh(
    seed: u64,
    noise_px: f64,
    with_mesh: bool,
    own_frame: bool,
    mesh: &Path,
    output: &Path,
) -> Result<(), Failure> {
    // Errors reading the mesh name the mesh; the others the output folder.
    avnplan::io::mesh::load_mesh(mesh).in_file(mesh)?;
    avnplan::pipeline::write_phantom_around_mesh(seed, noise_px, with_mesh, own_frame, mesh, output)
        .in_file(output)
}

fn register(case: &Path, output: Option<&Path>) -> Result<(), Failure> {
    let reg = avnplan::pipeline::registration_file(case).in_file(case)?;
    emit(&reg, output)
}

/// `avnplan check`: each failure names the file it comes from.
fn run_check(
    case: &Path,
    plan: &Path,
    needle: &Path,
    output: Option<&Path>,
) -> Result<(), Failure> {
    use avnplan::guidance::{check_needle, CheckContext};
    use avnplan::pipeline::{check_bone, check_to_file, needle_observations, planned_paths};
    let (case_v, _warnings) = avnplan::io::load_case(case).in_file(case)?;
    let plan_v = avnplan::io::plan::load_plan(plan).in_file(plan)?;
    let needle_v = avnplan::io::needle::load_needle(needle).in_file(needle)?;
    let planned = planned_paths(&plan_v).in_file(plan)?;
    let seen = needle_observations(&case_v, &needle_v).in_file(needle)?;
    let bone = check_bone(&case_v, &plan_v).in_file(case)?;
    let ctx = CheckContext {
        bone: &bone,
        side: case_v.side,
        constraints: &case_v.constraints,
        forbidden: &case_v.forbidden_zones,
    };
    let check = check_needle(&ctx, &planned, &seen).in_file(needle)?;
    emit(&check_to_file(&check), output)
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
