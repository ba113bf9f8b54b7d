//! Every image with SBOMs holds a provenance statement beside them (an in-toto Statement v1,
//! SLSA Provenance v1 predicate) that validates against the specs' schemas, names every
//! package and the base, and is the same bytes for the same build.

mod common;

use std::path::Path;
use std::process::Command;

use common::{archive, build, conda_docker, run_ok, tempdir};

/// Python with jsonschema, or None (a failure in CI).
fn jsonschema(test: &str) -> Option<std::path::PathBuf> {
    common::tools::python_with("jsonschema, referencing", "pip install jsonschema", test)
}

/// Validates `statement` against the SLSA Provenance v1 schema (over in-toto Statement v1),
/// and checks the schema refuses it without its builder id.
fn validate(python: &Path, statement: &Path) {
    let script = "import json, sys, copy\n\
        from jsonschema import Draft202012Validator as V\n\
        from referencing import Registry, Resource\n\
        d = sys.argv[1]\n\
        schemas = [json.load(open(f'{d}/{n}.schema.json')) for n in ('in-toto-statement-v1', 'slsa-provenance-v1')]\n\
        registry = Registry().with_resources([(s['$id'], Resource.from_contents(s)) for s in schemas])\n\
        v = V(schemas[1], registry=registry, format_checker=V.FORMAT_CHECKER)\n\
        doc = json.load(open(sys.argv[2]))\n\
        errors = [e.message for e in v.iter_errors(doc)]\n\
        assert not errors, errors\n\
        bad = copy.deepcopy(doc)\n\
        del bad['predicate']['runDetails']['builder']['id']\n\
        assert list(v.iter_errors(bad)), 'the schema checks nothing'\n";
    run_ok(
        Command::new(python)
            .args(["-c", script])
            .arg(common::repo().join("tests/fixtures/schemas"))
            .arg(statement),
    );
}

#[test]
fn an_image_holds_its_provenance_the_same_for_the_same_build() {
    let test = "an_image_holds_its_provenance_the_same_for_the_same_build";
    let Some(python) = jsonschema(test) else {
        return;
    };
    let dir = tempdir();
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    build(a.to_str().unwrap(), "prov:1", &[], &["bzip2"]);
    build(b.to_str().unwrap(), "prov:1", &[], &["bzip2"]);
    let read = |p: &Path| {
        run_ok(conda_docker().args(["provenance", &format!("docker-archive:{}", p.display())]))
    };
    let statement = read(&a);
    assert_eq!(statement, read(&b), "the same build gives the same bytes");
    let file = dir.path().join("provenance.json");
    std::fs::write(&file, &statement).unwrap();
    validate(&python, &file);

    let doc: serde_json::Value = serde_json::from_str(&statement).unwrap();
    let image = archive::open(&a);
    let label = image.config["config"]["Labels"]["org.conda-docker.packages.digest"]
        .as_str()
        .unwrap();
    assert_eq!(
        doc["subject"][0],
        serde_json::json!({
            "name": "/opt/conda/conda-meta/explicit.txt",
            "digest": {"sha256": &label[7..]},
        }),
        "the subject is the package list the label names"
    );
    let definition = &doc["predicate"]["buildDefinition"];
    assert_eq!(definition["externalParameters"]["platform"], "linux-64");
    let resolved = definition["resolvedDependencies"].as_array().unwrap();
    let repodata: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::channel().join("linux-64/repodata.json")).unwrap(),
    )
    .unwrap();
    let bzip2 = resolved
        .iter()
        .find(|r| r["name"].as_str().unwrap().starts_with("bzip2-1.0.8"))
        .unwrap_or_else(|| panic!("no bzip2 in {resolved:?}"));
    let file_name = bzip2["name"].as_str().unwrap();
    let want = repodata["packages.conda"][file_name]["sha256"]
        .as_str()
        .unwrap();
    assert_eq!(
        bzip2["digest"]["sha256"], want,
        "each package by its sha256"
    );
    assert!(
        resolved
            .iter()
            .any(|r| r["name"] == "base image" && r["digest"]["sha256"].is_string()),
        "the base by its image ID"
    );
    assert_eq!(
        doc["predicate"]["runDetails"]["builder"]["version"]["conda-docker"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        !statement.contains(&*dir.path().to_string_lossy()),
        "no path of the build machine"
    );

    let bare = dir.path().join("bare.tar");
    build(bare.to_str().unwrap(), "prov:2", &["--no-sbom"], &["bzip2"]);
    let out = conda_docker()
        .args(["provenance", &format!("docker-archive:{}", bare.display())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("holds no provenance statement"),
        "{err}"
    );
}
