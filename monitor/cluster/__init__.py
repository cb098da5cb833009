"""Building blocks for the cluster roles, on Redis: lease, work queue, streams, members."""
