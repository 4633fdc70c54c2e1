"""``aiops demo``: the platform plus a simulated shop with faults on command, and the loop's timings."""
