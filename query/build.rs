//! Embeds the web UI (`ui/dist`, built by `scripts/ui` with Vite) in the
//! query service: every file becomes a static asset with its media type
//! and a gzip copy. Without a built UI the service still builds, and `/`
//! says how to build it.

use std::io::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("../ui/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    // The directory's own change (created, replaced) is not enough when a
    // build replaces its files: their list is watched through index.html.
    println!(
        "cargo:rerun-if-changed={}",
        dist.join("index.html").display()
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from("/// The built UI's files (empty when the UI was not built).\n");
    code.push_str("pub(crate) static ASSETS: &[Asset] = &[\n");
    for (i, (url, file)) in files.iter().enumerate() {
        let body = std::fs::read(file).expect("a file of ui/dist reads");
        let gz = out.join(format!("ui-asset-{i}.gz"));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&body).expect("gzip in memory");
        let packed = enc.finish().expect("gzip in memory");
        // Only worth sending compressed when it saves something.
        let gzip = if packed.len() + 64 < body.len() {
            std::fs::write(&gz, &packed).expect("OUT_DIR is writable");
            format!("Some(include_bytes!({:?}))", gz.display().to_string())
        } else {
            "None".to_owned()
        };
        code.push_str(&format!(
            "    Asset {{ path: {url:?}, media_type: {:?}, body: include_bytes!({:?}), gzip: {gzip} }},\n",
            media_type(url),
            file.display().to_string(),
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("ui_assets.rs"), code).expect("OUT_DIR is writable");
}

/// Every file under `dir`, as (URL path from `root`, file path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let url = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((format!("/{url}"), path));
        }
    }
}

fn media_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
