//! Prints the import circles between files of the workspace's crates (see
//! `mdm_e2e::imports`) and, for each, the direct imports inside it: the edges to cut.
//! Exits 1 when there is any. `./scripts/import-circles.sh`.

fn main() {
    let root = mdm_e2e::workspace_root();
    let circles = mdm_e2e::imports::circles(&root);
    for (krate, files) in &circles {
        println!("circle in {krate} ({} files):", files.len());
        for (from, to) in mdm_e2e::imports::circle_edges(&root, files) {
            println!("  {from} -> {to}");
        }
    }
    println!("{} import circle(s)", circles.len());
    std::process::exit(i32::from(!circles.is_empty()));
}
