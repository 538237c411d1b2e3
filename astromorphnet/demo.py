"""The main job: simulate a survey, train a network, report catalog and R².

``astromorphnet demo`` on the command line runs `run_demo` on its defaults.
"""

import os
import time

__all__ = ["run_demo"]

#: Demo parameter ranges: the reference thesis's, with radii and magnitudes
#: cut to what a small stamp and a small training set can resolve.
DEMO_RANGES = {"mag": (17.0, 24.0), "r_eff": (1.5, 10.0)}


def run_demo(n_galaxies=1000, *, stamp_size=48, architecture="light", max_epochs=40,
             learning_rate=1e-3, test_fraction=0.2, output_dir="astromorphnet-demo",
             random_state=0, verbose=1):
    """Simulate galaxies, train `~astromorphnet.SersicCNNRegressor`, report R².

    Galaxies are drawn with `~astromorphnet.simulation.simulate_galaxies`
    (HST/CANDELS F160W-like), split into training and test sets; the
    network's test catalog is written as ECSV and its per-parameter R²
    printed (the reference thesis's "sim-only on sims" row).

    Parameters
    ----------
    n_galaxies : int, optional
        Galaxies simulated (training + test).
    stamp_size : int, optional
        Cutout size in pixels.
    architecture : str, optional
        Network (``"light"`` or ``"thesis"``).
    max_epochs : int, optional
        Upper bound on training epochs (early stopping applies).
    learning_rate : float, optional
        Adam learning rate.
    test_fraction : float, optional
        Fraction of galaxies held out for testing.
    output_dir : str or path-like, optional
        Where the catalog (``catalog.ecsv``) and R² table (``r2.ecsv``) go.
    random_state : int, optional
        Seed of the simulation and the training.
    verbose : int, optional
        0 silent; 1 progress bars and results.

    Returns
    -------
    result : dict
        ``catalog`` (test-set `~astropy.table.QTable` with a ``true_*`` column
        per parameter), ``r2`` (`~astropy.table.QTable`), ``estimator`` and
        ``timings`` (seconds per stage).

    Examples
    --------
    >>> import tempfile
    >>> from astromorphnet.demo import run_demo
    >>> result = run_demo(40, stamp_size=32, max_epochs=1, verbose=0,
    ...                   output_dir=tempfile.mkdtemp())
    >>> result["r2"].colnames
    ['model', 'mag', 'r_eff', 'sersic_n', 'ellipticity']
    """
    from .catalog import TARGETS
    from .estimators import SersicCNNRegressor
    from .metrics import r2_table
    from .simulation import simulate_galaxies

    timings = {}
    start = time.perf_counter()
    if verbose:
        print(f"Simulating {n_galaxies} galaxies ({stamp_size}x{stamp_size} px, "
              "HST/CANDELS F160W-like)...")
    images, truth = simulate_galaxies(n_galaxies, stamp_size=stamp_size, ranges=DEMO_RANGES,
                                      n_jobs=-1, random_state=random_state,
                                      verbose=bool(verbose))
    timings["simulate"] = time.perf_counter() - start
    n_test = max(1, int(round(test_fraction * n_galaxies)))
    train, test = slice(0, n_galaxies - n_test), slice(n_galaxies - n_test, n_galaxies)

    start = time.perf_counter()
    reg = SersicCNNRegressor(architecture, learning_rate=learning_rate, max_epochs=max_epochs,
                             zeropoint=truth.meta["zeropoint"],
                             pixel_scale=truth.meta["pixel_scale"],
                             random_state=random_state, verbose=verbose)
    reg.fit(images[train], truth[train])
    timings["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    catalog = reg.predict(images[test])
    timings["predict"] = time.perf_counter() - start
    r2 = r2_table(truth[test], {"sim-only (on sims)": catalog})
    for name in TARGETS:
        catalog[f"true_{name}"] = truth[name][test]

    os.makedirs(output_dir, exist_ok=True)
    catalog.write(os.path.join(output_dir, "catalog.ecsv"), overwrite=True)
    r2.write(os.path.join(output_dir, "r2.ecsv"), overwrite=True)
    if verbose:
        print(f"\nTest catalog ({n_test} galaxies, first 5 rows):")
        catalog[:5].pprint(max_width=120)
        print("\nR² on the simulated test set:")
        for name in TARGETS:
            r2[name].info.format = ".3f"
        r2.pprint(max_width=120)
        print(f"\nWrote {output_dir}/catalog.ecsv and r2.ecsv. Timings: " +
              ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    return {"catalog": catalog, "r2": r2, "estimator": reg, "timings": timings}
