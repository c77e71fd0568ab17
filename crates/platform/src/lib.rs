//! The control plane: REST API, web console, node link server and background jobs.
