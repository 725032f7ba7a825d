//! Prints every CRD (development aid).
fn main() {
    print!("{}", sluice_crds::all_yaml());
}
