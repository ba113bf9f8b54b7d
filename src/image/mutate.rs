//! Editing an image: adding and removing layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Image;
use super::cancel::Cancel;
use super::config::History;
use super::error::{Error, Result};
use super::files::{FileContent, read_files};
use super::layer::{Compression, EntriesLayer, FileRange, Layer, LayerSource};
use super::layer_tar::{Entry, EntryData, Ownership, check_relative};

impl Image {
    /// Adds `layer` on top, with a history entry describing it.
    pub fn push_layer(&mut self, layer: Layer, history: History) {
        self.layers.push(layer);
        self.config.history.push(History {
            empty_layer: false,
            ..history
        });
    }

    /// Removes the top layer and its history entry; `None` when there are no layers.
    pub fn remove_layer(&mut self) -> Option<Layer> {
        let layer = self.layers.pop()?;
        if let Some(i) = self.config.history.iter().rposition(|h| !h.empty_layer) {
            self.config.history.truncate(i);
        }
        Some(layer)
    }

    /// Adds a layer holding the directory tree at `path`, placed at `arcpath` in the image,
    /// read as [`super::host::HostFiles`] reads it (symlinks kept, never followed).
    pub fn add_layer_path(&mut self, path: &Path, arcpath: &str, mtime: u64) -> Result<()> {
        let mut files = super::host::HostFiles::new();
        files.scan(path, arcpath, true)?;
        // History names only the place in the image, never a build-machine path.
        let description = format!("directory at /{}", arcpath.trim_start_matches('/'));
        self.push_layer(
            files.into_layer(mtime, description.clone()),
            History {
                created_by: Some(format!("conda-docker add_layer_path {description}")),
                ..Default::default()
            },
        );
        Ok(())
    }

    /// Adds a layer of files with the given contents (`{"etc/motd": b"hi"}`), mode 0644.
    pub fn add_layer_contents(
        &mut self,
        contents: BTreeMap<String, Vec<u8>>,
        mtime: u64,
    ) -> Result<()> {
        let mut entries = Vec::new();
        for (path, bytes) in contents {
            let p = PathBuf::from(path.trim_start_matches('/'));
            check_relative(&p).map_err(|e| Error::invalid(&path, e.to_string()))?;
            entries.push(Entry {
                path: p,
                data: EntryData::Bytes(bytes),
                mode: 0o644,
            });
        }
        self.push_layer(
            Layer::from_entries(entries, mtime, "contents"),
            History {
                created_by: Some("conda-docker add_layer_contents".into()),
                ..Default::default()
            },
        );
        Ok(())
    }

    /// Adds the tar file at `path` (plain, gzip or zstd) as a layer.
    pub fn add_layer_tar(&mut self, path: &Path) -> Result<()> {
        let mut magic = [0u8; 4];
        let size = std::fs::metadata(path)
            .map_err(Error::io("reading", path))?
            .len();
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(Error::io("reading", path))?;
            let n = f.read(&mut magic).map_err(Error::io("reading", path))?;
            magic[n..].fill(0);
        }
        let layer = Layer::from_blob(
            LayerSource::Blob {
                range: FileRange {
                    path: path.to_path_buf(),
                    offset: 0,
                    size,
                },
                compression: Compression::sniff(&magic),
                digest: None,
            },
            None,
            path.display().to_string(),
        );
        self.push_layer(
            layer,
            History {
                created_by: Some(format!("conda-docker add_layer_tar {}", path.display())),
                ..Default::default()
            },
        );
        Ok(())
    }
}

impl Image {
    /// Adds a user `name` (`uid`:`gid`) to the image's `/etc/passwd` and `/etc/group` (made,
    /// with root, when missing) with a home directory `/home/NAME` it owns, in one small layer;
    /// sets `HOME`. Fails with [`Error::UserTaken`] when the name or uid is taken by another.
    pub fn add_user(
        &mut self,
        name: &str,
        uid: u32,
        gid: u32,
        mtime: u64,
        cancel: &Cancel,
    ) -> Result<()> {
        let files = read_files(self, &["etc/passwd", "etc/group"], cancel)?;
        let text = |path: &str| match files.get(path) {
            Some(FileContent::File(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            _ => String::new(),
        };
        let (mut passwd, mut group) = (text("etc/passwd"), text("etc/group"));
        if passwd.is_empty() {
            passwd.push_str("root:x:0:0:root:/root:/bin/sh\n");
        }
        if group.is_empty() {
            group.push_str("root:x:0:\n");
        }
        let home = format!("home/{name}");
        let field = |line: &str, i: usize| line.split(':').nth(i).map(str::to_string);
        let (uid_s, gid_s) = (uid.to_string(), gid.to_string());
        match passwd.lines().find(|l| {
            field(l, 0).as_deref() == Some(name) || field(l, 2).as_deref() == Some(&uid_s)
        }) {
            Some(line)
                if field(line, 0).as_deref() == Some(name)
                    && field(line, 2).as_deref() == Some(&uid_s) => {}
            Some(line) => {
                return Err(Error::UserTaken {
                    user: format!("{name}:{uid}"),
                    entry: line.to_string(),
                });
            }
            None => {
                if !passwd.ends_with('\n') {
                    passwd.push('\n');
                }
                passwd.push_str(&format!("{name}:x:{uid}:{gid}:{name}:/{home}:/bin/sh\n"));
            }
        }
        if !group
            .lines()
            .any(|l| field(l, 2).as_deref() == Some(&gid_s))
        {
            if !group.ends_with('\n') {
                group.push('\n');
            }
            group.push_str(&format!("{name}:x:{gid}:\n"));
        }
        let entries = vec![
            Entry {
                path: "etc/passwd".into(),
                data: EntryData::Bytes(passwd.into_bytes()),
                mode: 0o644,
            },
            Entry {
                path: "etc/group".into(),
                data: EntryData::Bytes(group.into_bytes()),
                mode: 0o644,
            },
            Entry {
                path: home.clone().into(),
                data: EntryData::Dir,
                mode: 0o755,
            },
        ];
        let owner = Ownership {
            root: home.into(),
            uid,
            gid,
        };
        let description = format!("user {name} ({uid}:{gid})");
        self.push_layer(
            Layer::from_tar_source(
                std::sync::Arc::new(EntriesLayer {
                    entries,
                    mtime,
                    owner: Some(owner),
                }),
                description.clone(),
            ),
            History {
                created: Some(super::config::rfc3339(mtime)),
                created_by: Some(format!("conda-docker: {description}")),
                ..Default::default()
            },
        );
        self.config_mut()
            .config
            .set_env_var("HOME", &format!("/home/{name}"));
        Ok(())
    }
}
