//! The `mdmctl` binary: the library's command line run against this process's arguments,
//! environment and standard streams.

fn main() {
    let code = mdmctl::run_in(
        mdmctl::Env::process(),
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        // Not locked for the whole run: the progress bar's thread writes to it too.
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
