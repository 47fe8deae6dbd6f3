//! vigild's metrics for a fleet's dashboards (`vigilctl metrics`, the `[metrics]`
//! textfile for node_exporter): the counters the calls and the audit writer bump
//! (`counters`), the Prometheus text format (`exposition`), what one scrape reads
//! (`collect`: the registry's gauges under its lock, no I/O inside), and the task that
//! rewrites the textfile (`textfile`).

pub mod collect;
pub mod counters;
pub mod exposition;
pub mod textfile;
