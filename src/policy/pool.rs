//! Parsing that overlaps with reading: files are handed to worker threads as
//! they arrive (from S3 downloads, say), so YAML parsing, most of a cold
//! start's CPU, runs while the rest of the set is still on the wire.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::parse::parse_file;
use super::{Policy, PolicyError};
use crate::store::StoreFile;

/// Most parse threads started, whatever the core count: a Lambda function
/// has at most six vCPUs, and files are small.
const MAX_WORKERS: usize = 4;

type Parsed = (Vec<Policy>, Vec<PolicyError>);

/// Parse workers fed one file at a time; [`ParsePool::finish`] collects.
pub struct ParsePool {
    sender: Option<Sender<StoreFile>>,
    workers: Vec<JoinHandle<Parsed>>,
    /// Files no worker could take (none started): parsed by `finish`.
    unsent: Vec<StoreFile>,
}

impl ParsePool {
    /// Starts one worker per available core (at least one, at most four).
    pub fn start() -> ParsePool {
        let count = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_WORKERS);
        let (sender, receiver) = mpsc::channel::<StoreFile>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers: Vec<_> = (0..count)
            .filter_map(|_| {
                let receiver = Arc::clone(&receiver);
                std::thread::Builder::new()
                    .name("verdict-parse".to_string())
                    .spawn(move || work(&receiver))
                    .ok()
            })
            .collect();
        ParsePool {
            sender: (!workers.is_empty()).then_some(sender),
            workers,
            unsent: Vec::new(),
        }
    }

    /// Queues a policy file for parsing.
    pub fn push(&mut self, file: StoreFile) {
        let rejected = match &self.sender {
            Some(sender) => sender.send(file).err().map(|e| e.0),
            None => Some(file),
        };
        self.unsent.extend(rejected);
    }

    /// Waits for every queued file and returns the policies and errors in
    /// file order, as [`super::parse_set`] would.
    pub fn finish(mut self) -> Parsed {
        drop(self.sender.take());
        let (mut policies, mut errors) = super::parse_set(&self.unsent);
        for worker in self.workers {
            match worker.join() {
                Ok((mut part_policies, mut part_errors)) => {
                    policies.append(&mut part_policies);
                    errors.append(&mut part_errors);
                }
                // Its files are unknown: fail the set rather than serve it short.
                Err(_) => errors.push(PolicyError {
                    file: String::new(),
                    line: 0,
                    column: 0,
                    message: "a policy parsing thread failed; the set was not loaded".to_string(),
                }),
            }
        }
        // Stable sorts by file: each file was parsed whole by one thread, so
        // its documents and errors are already in order.
        policies.sort_by(|a, b| a.file().cmp(b.file()));
        errors.sort_by(|a, b| a.file.cmp(&b.file));
        (policies, errors)
    }
}

fn work(queue: &Mutex<Receiver<StoreFile>>) -> Parsed {
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    loop {
        // The lock is held only to take the next file, not while parsing it.
        let next = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(file) = next else { break };
        match parse_file(&file.name, &file.bytes) {
            Ok(mut parsed) => policies.append(&mut parsed),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    (policies, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> StoreFile {
        StoreFile {
            name: name.to_string(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn resource_policy(kind: &str) -> String {
        format!(
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: {kind}\n  version: default\n  rules:\n    - actions: [view]\n      effect: EFFECT_ALLOW\n      roles: [user]\n"
        )
    }

    #[test]
    fn gives_the_same_result_as_parsing_in_one_go() {
        let mut files: Vec<StoreFile> = (0..200)
            .map(|i| {
                file(
                    &format!("p/{i:03}.yaml"),
                    &resource_policy(&format!("kind_{i}")),
                )
            })
            .collect();
        files.push(file("p/broken_a.yaml", "resourcePolicy: [unclosed"));
        files.push(file(
            "p/broken_b.yaml",
            "apiVersion: api.cerbos.dev/v1\nnope: 1\n",
        ));
        let expected = crate::policy::parse_set(&files);

        let mut pool = ParsePool::start();
        // Arrival order is not file order when downloads finish out of order.
        for f in files.iter().rev() {
            pool.push(f.clone());
        }
        let (policies, errors) = pool.finish();

        let names = |ps: &[Policy]| ps.iter().map(|p| p.file().to_string()).collect::<Vec<_>>();
        assert_eq!(names(&policies), names(&expected.0));
        assert_eq!(policies.len(), 200);
        assert_eq!(errors, expected.1);
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn an_empty_pool_finishes_empty() {
        let (policies, errors) = ParsePool::start().finish();
        assert!(policies.is_empty() && errors.is_empty());
    }
}
