use clap::Parser;

fn main() {
    let cli = reelsmith::cli::Cli::parse();
    std::process::exit(reelsmith::cli::run(cli));
}
