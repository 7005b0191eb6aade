//! Device selection (`--device auto|cpu|cuda`) and the CPU thread count.

use crate::{Error, Result};
use burn::tensor::Device;

/// The first CUDA device, checked usable: cudarc panics (with a backtrace) when the CUDA driver
/// library cannot be loaded, so the first allocation is tried under a silenced panic hook and a
/// failure becomes one clear error.
#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    use burn::tensor::Tensor;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let d = Device::cuda(0);
        let _ = Tensor::<1>::zeros([1], &d).into_data();
        d
    });
    std::panic::set_hook(hook);
    probe.map_err(|_| {
        Error::Config(
            "--device cuda: no usable CUDA driver on this machine (libcuda could not be loaded or no GPU is visible); install the NVIDIA driver, check CUDA_VISIBLE_DEVICES, or use --device cpu".into(),
        )
    })
}

/// Picks the compute device by name. `auto` is CUDA when built with the `cuda` feature and a
/// GPU is usable, else CPU.
pub fn select(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::flex()),
        "auto" => {
            #[cfg(feature = "cuda")]
            {
                Ok(cuda().unwrap_or_else(|_| Device::flex()))
            }
            #[cfg(not(feature = "cuda"))]
            {
                Ok(Device::flex())
            }
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            {
                cuda()
            }
            #[cfg(not(feature = "cuda"))]
            {
                Err(Error::Config(
                    "device 'cuda' needs a build with CUDA: cargo install --features cuda (or use --device cpu)".into(),
                ))
            }
        }
        other => Err(Error::Config(format!(
            "unknown device '{other}': use auto, cpu or cuda"
        ))),
    }
}

/// Sets the number of CPU threads used by the compute backend (0 = one per core). Only the first
/// call in a process takes effect.
pub fn set_threads(n: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

thread_local! {
    /// Set on the threads [`par_map`] starts, so work inside them does not split itself again.
    static IN_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Threads a self-contained computation may split over: the backend's thread count, or 1 on a
/// thread [`par_map`] started (the caller already keeps the cores busy).
pub fn spare_threads() -> usize {
    if IN_WORKER.get() {
        1
    } else {
        rayon::current_num_threads().max(1)
    }
}

/// Applies `f` to every item on `workers` scoped threads (items dealt round-robin) and returns
/// the results in item order. The Flex backend runs much of its work on the calling thread, so
/// independent batches on separate threads are what keeps every core busy.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    let mut parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    IN_WORKER.set(true);
                    (w..items.len())
                        .step_by(workers)
                        .map(|i| (i, f(&items[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in parts.drain(..).flatten() {
        out[i] = Some(r);
    }
    out.into_iter().flatten().collect()
}

/// `rows` split into at most `workers` contiguous, near-equal ranges `(start, end)` (one range,
/// possibly empty, when there are no rows).
pub fn row_ranges(rows: usize, workers: usize) -> Vec<(usize, usize)> {
    let n = workers.clamp(1, rows.max(1));
    (0..n).map(|i| (i * rows / n, (i + 1) * rows / n)).collect()
}

/// The batch size that splits `items` over `workers`: at most `cap`, and small enough that every
/// worker gets a batch where there are items enough (one batch runs on one thread).
pub fn batch_per_worker(items: usize, cap: usize, workers: usize) -> usize {
    cap.min(items.div_ceil(workers.max(1))).max(1)
}

/// The number of worker threads for `threads` (0 = one per core).
pub fn workers(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

#[cfg(test)]
mod tests {
    use super::batch_per_worker;

    #[test]
    fn batches_split_over_the_workers_up_to_the_cap() {
        assert_eq!(
            batch_per_worker(64, 64, 2),
            32,
            "one batch of 64 would leave a worker idle"
        );
        assert_eq!(batch_per_worker(9, 64, 2), 5);
        assert_eq!(batch_per_worker(1000, 64, 2), 64, "the cap holds");
        assert_eq!(batch_per_worker(64, 64, 1), 64);
        assert_eq!(batch_per_worker(0, 64, 2), 1, "never an empty batch size");
        assert_eq!(
            batch_per_worker(7, usize::MAX, 0),
            7,
            "no workers reads as one"
        );
    }
}
