"""Suite `small_batch_variance`: does an optimizer need large batches to converge under heavy noise?

The paper's headline claim is that momentum removes normalized SGD's need for large batches. One
run (one optimizer, one seed) sweeps problems x batch sizes x learning rates x replicates; each
such unit trains from the problem's start and logs one `sbv_unit` record with the true gradient
norm at the reported iterate over time, its floor, its fitted exponent in T with a 95% interval,
and the measured gradient variance at that batch size. See problems.py for the three problem
families, presets.py for the keys, findings.py for the predicted findings and the summary.

Every unit sets its own lr (run lr x family scale x multiplier, see presets.py), builds raw float64
parameter tensors on the CPU whatever the run's device (the problems are tiny; exact measurement
matters more than speed), and draws its noise from its own generator seeded by (run seed, unit
key), so units are independent of order and of each other: resume skips the logged ones. All
optimizers see the same noise streams for the same unit key (common random numbers).
"""
