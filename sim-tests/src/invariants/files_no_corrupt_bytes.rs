//! No corrupt file byte is ever accepted or served: every chunk response a
//! replica or client puts on the wire is exactly the honest encoding of the
//! content the file id names, and every byte a download writes is the
//! content's byte at that place. Corruption on the wire or on a disk must
//! be caught by the verification before either happens.

use kith_core::files::{build_outboard, ChunkResponse, FileId, Geometry};
use kith_core::testing::file_observation::FileObservation;
use kith_core::testing::invariant::{Invariant, Observation};
use std::collections::BTreeMap;

/// Every content made in the run, with its hash tree.
#[derive(Debug, Default)]
pub struct FilesNoCorruptBytes {
    contents: BTreeMap<FileId, (Vec<u8>, Vec<u8>)>,
}

impl Invariant for FilesNoCorruptBytes {
    fn name(&self) -> &'static str {
        "no corrupt file byte"
    }

    fn observe(&mut self, observation: &Observation<'_>) -> Result<(), String> {
        let Observation::File(observation) = observation else { return Ok(()) };
        match observation {
            FileObservation::Created { file, content } => {
                let geometry = Geometry::new(*file).map_err(|e| format!("{file}: {e}"))?;
                let mut outboard = Vec::new();
                build_outboard(&geometry, *content, &mut outboard)
                    .map_err(|e| format!("content made for {file} is not it: {e}"))?;
                self.contents.insert(*file, (content.to_vec(), outboard));
            }
            FileObservation::Served { node, to, file, response, .. } => {
                let Some((content, outboard)) = self.contents.get(file) else { return Ok(()) };
                let geometry = Geometry::new(*file).map_err(|e| e.to_string())?;
                let groups = response.groups();
                let honest =
                    ChunkResponse::encode(&geometry, groups.clone(), &content[..], &outboard[..])
                        .map_err(|e| format!("{node:?} served groups {groups:?} of {file}: {e}"))?;
                if honest != **response {
                    return Err(format!(
                        "{} served corrupt groups {groups:?} of {file} to {to}",
                        node.map_or("an uploading client".to_string(), |n| format!("n{n}"))
                    ));
                }
            }
            FileObservation::Written { file, offset, data } => {
                let Some((content, _)) = self.contents.get(file) else { return Ok(()) };
                let at = *offset as usize;
                let truth = content.get(at..at + data.len());
                if truth != Some(*data) {
                    return Err(format!(
                        "a download wrote {} bytes at {offset} of {file} that are not the file's",
                        data.len()
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
