//! The data plane node: listeners, routing, proxying, upstream pools and the link client.
