//! Editing an image: adding and removing layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Image;
use super::config::History;
use super::error::{Error, Result};
use super::layer::{Compression, FileRange, Layer, LayerSource};
use super::layer_tar::{Entry, EntryData, check_relative};

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

    /// Adds a layer holding the directory tree at `path`, placed at `arcpath` in the image.
    pub fn add_layer_path(&mut self, path: &Path, arcpath: &str, mtime: u64) -> Result<()> {
        let arc_root = PathBuf::from(arcpath.trim_start_matches('/'));
        check_relative(&arc_root).map_err(|e| Error::invalid(path, e.to_string()))?;
        let mut entries = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let rel = dir.strip_prefix(path).unwrap_or(Path::new(""));
            let entry =
                Entry::from_fs(&dir, arc_root.join(rel)).map_err(Error::io("reading", &dir))?;
            if entry.data == EntryData::Dir {
                for child in std::fs::read_dir(&dir).map_err(Error::io("reading", &dir))? {
                    stack.push(child.map_err(Error::io("reading", &dir))?.path());
                }
            }
            entries.push(entry);
        }
        // History names only the place in the image, never a build-machine path.
        let description = format!("directory at /{}", arc_root.display());
        self.push_layer(
            Layer::from_entries(entries, mtime, description.clone()),
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
