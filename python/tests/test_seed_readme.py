"""The seed README's three library examples, verbatim but for where the base images come from
(a local registry, so the tests run offline) and, in the third, the packages and channel (the
bundled conda-forge channel has bzip2, not numpy/numba/flask). Docker loads and runs each output."""

import json

import pytest

from conftest import CHANNEL


def test_readme_pull_image(bases):
    # "Downloading docker images without docker!"
    from conda_docker.registry.client import pull_image

    image = pull_image(bases["glibc"], 'latest')

    assert image.name == bases["glibc"] and image.tag == "latest"
    assert len(image.layers) == 1
    assert image.layers[0].id and len(image.layers[0].id) == 64
    assert image.layers[0].config["Cmd"] == ["/bin/sh"]


def test_readme_modify_image(bases, docker, tmp_path, monkeypatch):
    # "Modify docker image from filesystem", run in a directory of files to add.
    (tmp_path / "hello.txt").write_text("hello from the host\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "numbers.csv").write_text("1,2,3\n")
    (tmp_path / "data" / "link").symlink_to("numbers.csv")
    monkeypatch.chdir(tmp_path)

    from conda_docker.docker.base import Image
    from conda_docker.registry.client import pull_image

    image = pull_image(bases["miniconda"], 'latest')
    image.remove_layer()
    image.name = 'this-is-a-test'
    image.add_layer_path('./')
    image.add_layer_contents({
        'this/is/a/test1': b'this is test 1',
        'this/is/a/test2': b'this is test 2'
    })
    image.layers[0].config['Env'].append('FOO=BAR')
    image.write_file('example-filter.tar')

    assert isinstance(image, Image)
    assert image.layers[0].list_files() == ["this/", "this/is/", "this/is/a/", "this/is/a/test1", "this/is/a/test2"]
    assert "hello.txt" in image.layers[1].list_files()
    docker("load", "-i", str(tmp_path / "example-filter.tar"))
    config = json.loads(docker("inspect", "this-is-a-test:latest"))[0]["Config"]
    assert "FOO=BAR" in config["Env"]
    run = ["run", "--rm", "--network=none", "this-is-a-test:latest"]
    assert docker(*run, "cat", "/this/is/a/test1", "/this/is/a/test2") == "this is test 1this is test 2"
    assert docker(*run, "cat", "/hello.txt", "/data/link") == "hello from the host\n1,2,3\n"
    # The removed layer was the top one: bzip2's own layers are still there.
    assert "bzip2" in docker(*run, "sh", "-c", "ls /opt/conda/bin")


def test_readme_build_environment(bases, docker, tmp_path, monkeypatch):
    # "Build conda docker image from library"
    monkeypatch.chdir(tmp_path)
    from conda_docker.conda import build_docker_environment

    build_docker_environment(
        base_image=f'{bases["glibc"]}:latest',
        output_image='example-image:123456',
        packages=[
            'bzip2',
        ],
        channels=[str(CHANNEL)],
        output_filename='demo.tar')

    docker("load", "-i", str(tmp_path / "demo.tar"))
    out = docker("run", "--rm", "--network=none", "example-image:123456", "sh", "-c", "echo hi | bzip2 | bzip2 -d")
    assert out == "hi\n"
    # conda's bzip2, found on the image's PATH (not busybox's applet).
    help_text = docker("run", "--rm", "--network=none", "example-image:123456", "bzip2", "--help", check=False)
    assert "block-sorting file compressor" in help_text + docker.last_stderr


def test_build_environment_image_is_an_image_to_edit(bases, docker, tmp_path):
    from conda_docker.conda import build_docker_environment_image
    from conda_docker.registry.client import pull_image

    base = pull_image(bases["glibc"], "latest")
    image = build_docker_environment_image(base, "edited:1", packages=["bzip2"], channels=[str(CHANNEL)])
    assert (image.name, image.tag) == ("edited", "1")
    image.add_layer_contents({"etc/motd": b"built and edited\n"})
    image.layers[0].config["Env"].append("STAGE=edited")
    image.write_file(tmp_path / "edited.tar")
    docker("load", "-i", str(tmp_path / "edited.tar"))
    out = docker("run", "--rm", "--network=none", "edited:1", "sh", "-c", "cat /etc/motd; echo $STAGE; /opt/conda/bin/bzip2 --help 2>&1 | head -1")
    assert out.startswith("built and edited\nedited\nbzip2, a block-sorting file compressor")


def test_filter_renames_changes_modes_and_drops(tmp_path, docker):
    from conda_docker import CondaDockerError, Image

    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.sh").write_text("#!/bin/sh\necho kept\n")
    (src / "drop.a").write_text("static lib")
    (src / "escape").symlink_to("/etc/passwd")

    def tar_filter(info):
        if info.name.endswith(".a"):
            return None
        if info.name.endswith("keep.sh"):
            info.name = "app/bin/run.sh"
            info.mode = 0o755
        return info

    [image] = Image.from_file(_demo_base())
    image.name, image.tag = "filtered", "1"
    image.add_layer_path(src, arcpath="/app", filter=tar_filter)
    image.write_file(tmp_path / "filtered.tar")
    docker("load", "-i", str(tmp_path / "filtered.tar"))
    out = docker("run", "--rm", "--network=none", "filtered:1", "sh", "-c", "/app/bin/run.sh; ls /app; readlink /app/escape")
    assert out == "kept\nbin\nescape\n/etc/passwd\n"

    def chown(info):
        info.uid = 1000
        return info

    with pytest.raises(CondaDockerError, match="owned by root"):
        image.add_layer_contents({"x": b"y"}, filter=chown)


def test_from_file_reads_every_archive_kind(tmp_path):
    from conda_docker import Image

    [image] = Image.from_file(_demo_base())
    assert (image.name, image.tag) == ("glibc-base", "demo")
    ids = {image.write(f"oci:{tmp_path}/layout:demo")["image_id"]}
    ids.add(image.write(f"oci-archive:{tmp_path}/image.oci.tar:demo")["image_id"])
    for source in (f"oci:{tmp_path}/layout", str(tmp_path / "layout"), str(tmp_path / "image.oci.tar")):
        [again] = Image.from_file(source)
        ids.add(again.write_file(tmp_path / "again.tar"))
    assert len(ids) == 1, ids


def _demo_base():
    from conftest import DEMO_BASE

    return DEMO_BASE


def test_image_from_layers_and_add_layer_paths(tmp_path, docker):
    from conda_docker import Image

    [base] = Image.from_file(_demo_base())
    (tmp_path / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (tmp_path / "tool.sh").chmod(0o755)
    image = Image("assembled", "2", layers=base.layers)
    assert [l.diff_id for l in image.layers] == [l.diff_id for l in base.layers]
    assert image.config == base.config and image.config is not base.config
    image.add_layer_paths({tmp_path / "tool.sh": "/usr/local/bin/tool"})
    image.config["Cmd"] = ["tool"]
    image.config["Env"][0] = "PATH=/usr/local/bin:/bin"
    assert base.config["Cmd"] == ["/bin/sh"]
    image.write_file(tmp_path / "assembled.tar")
    docker("load", "-i", str(tmp_path / "assembled.tar"))
    assert docker("run", "--rm", "--network=none", "assembled:2") == "tool\n"
    removed = image.remove_layer()
    assert "add_layer_paths" in (removed.created_by or "")
    assert len(image.layers) == 1


def test_seed_layer_from_tar_bytes(tmp_path, docker):
    import io
    import tarfile

    from conda_docker.docker.base import Image, Layer

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"from bytes\n"
        info = tarfile.TarInfo("srv/note.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    [base] = Image.from_file(_demo_base())
    layer = Layer(id=None, parent=None, architecture="amd64", os="linux", created=None, author=None,
                  checksum=None, size=None, content=buffer.getvalue(), config=base.config)
    image = Image("from-bytes", "1", layers=[layer] + base.layers)
    assert image.layers[0].list_files() == ["srv/note.txt"]
    image.write_file(tmp_path / "bytes.tar")
    docker("load", "-i", str(tmp_path / "bytes.tar"))
    assert docker("run", "--rm", "--network=none", "from-bytes:1", "cat", "/srv/note.txt") == "from bytes\n"


def test_host_files_are_never_read_through_a_symlink(tmp_path):
    """A directory swapped for a symlink after add_layer_path scanned it is refused when the
    image is written: files are opened beneath the directory, following no symlink."""
    import shutil

    from conda_docker import CondaDockerError, Image

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "passwd").write_text("harmless\n")
    [image] = Image.from_file(_demo_base())
    image.add_layer_path(src, arcpath="/data")
    shutil.rmtree(src / "sub")
    (src / "sub").symlink_to("/etc")
    with pytest.raises(CondaDockerError, match="symlink"):
        image.write_file(tmp_path / "never.tar")
    assert not (tmp_path / "never.tar").exists()
