"""The pure core of the Bitcoin family (Bitcoin, Litecoin and their forks): coins as data
(``coins.json``), addresses, block templates to Stratum jobs, and the share check.  No I/O; the
family's daemon dialect is `pool.families.bitcoin`."""
