"""Simulation benchmark: naive GalSim vs astromorphnet's renderer (not a test).

    python benchmarks/bench_simulation.py            # speed at 64² and 128², n_jobs 1 and 2
    python benchmarks/bench_simulation.py --accuracy # flux / r_eff agreement on a grid

Both draw the same random galaxies (the reference thesis's ranges, HST/CANDELS
F160W preset PSF) with the same noise; "naive" is GalSim's default drawing of
the untruncated Sérsic⊗PSF.
"""

import argparse
import json
import time

import numpy as np


def naive(truth, survey):
    """GalSim's straightforward rendering, one galaxy after another."""
    import galsim

    psf = survey.psf_objects()[0]
    size, scale = survey.stamp_size, survey.pixel_scale
    out = np.empty((len(truth), size, size), np.float32)
    for i, row in enumerate(truth):
        q = 1 - float(row["ellipticity"])
        galaxy = galsim.Sersic(float(row["sersic_n"]),
                               half_light_radius=float(row["r_eff"].value) * scale * np.sqrt(q),
                               flux=10 ** (-0.4 * (row["mag"].value - survey.zeropoint)))
        galaxy = galaxy.shear(q=q, beta=float(row["pa"].value) * galsim.degrees)
        image = galsim.Convolve(galaxy, psf).drawImage(
            nx=size, ny=size, scale=scale, offset=(row["dx"].value, row["dy"].value))
        survey.noise.add(image, galsim.BaseDeviate(i + 1))
        out[i] = image.array
    return out


def speed(n):
    from astromorphnet.simulation import SurveyConfig, draw_parameters, simulate_galaxies

    results = []
    for size in (64, 128):
        survey = SurveyConfig.from_preset("CANDELS_F160W", stamp_size=size)
        truth = draw_parameters(n, random_state=0)
        t0 = time.perf_counter()
        naive(truth, survey)
        t_naive = (time.perf_counter() - t0) / n
        row = {"size": size, "n": n, "naive_ms": 1e3 * t_naive}
        for n_jobs in (1, 2):
            simulate_galaxies(truth=truth[:2], survey=survey, random_state=0)  # warm caches
            t0 = time.perf_counter()
            simulate_galaxies(truth=truth, survey=survey, n_jobs=n_jobs, random_state=0)
            t = (time.perf_counter() - t0) / n
            row[f"fast_ms_n_jobs_{n_jobs}"] = 1e3 * t
            row[f"speedup_n_jobs_{n_jobs}"] = t_naive / t
        results.append(row)
    return results


def accuracy():
    """Relative flux and half-light-radius differences, fast vs exact, noiseless."""
    import galsim

    from astromorphnet.simulation import PSFKernel, SurveyConfig, render_sersic

    rows = []
    for psf_name, psf in (("CANDELS_F160W preset", SurveyConfig.from_preset(
            "CANDELS_F160W").psf_objects()[0]), ("Moffat 0.18\"", galsim.Moffat(3, fwhm=0.18))):
        kernel = PSFKernel(psf, 0.06)
        worst = {"flux": 0.0, "hlr": 0.0}
        for n in (0.3, 0.5, 1, 2, 4, 6.2):
            for r_eff in (1.3, 3, 10, 30, 50):
                q, pa, dx, dy = 0.7, 30.0, 0.2, -0.3
                galaxy = galsim.Sersic(n, half_light_radius=r_eff * 0.06 * np.sqrt(q)).shear(
                    q=q, beta=pa * galsim.degrees)
                # The reference: GalSim at its default accuracy settings, drawn on a
                # 4x larger canvas and cropped, because a 128² FFT draw wraps the PSF
                # wings that fall outside the stamp back into it (~1 % of the light
                # for the Airy preset), which the real sky does not do.
                exact = galsim.Convolve(galaxy, psf.withGSParams(galsim.GSParams())).drawImage(
                    nx=512, ny=512, scale=0.06, offset=(dx, dy)).array[192:320, 192:320]
                fast = render_sersic((128, 128), 1.0, r_eff, n, q, pa, kernel, dx=dx, dy=dy)
                worst["flux"] = max(worst["flux"], abs(fast.sum() / exact.sum() - 1))
                c = (63.5 + dx, 63.5 + dy)
                worst["hlr"] = max(worst["hlr"], abs(_hlr(fast, *c) / _hlr(exact, *c) - 1))
        rows.append({"psf": psf_name, "max_rel_flux_diff": worst["flux"],
                     "max_rel_hlr_diff": worst["hlr"]})
    return rows


def _hlr(image, cx, cy):
    yy, xx = np.indices(image.shape)
    r = np.hypot(xx - cx, yy - cy).ravel()
    order = np.argsort(r)
    cum = np.cumsum(image.ravel()[order])
    return np.interp(0.5 * cum[-1], cum, r[order])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="galaxies per timing")
    parser.add_argument("--accuracy", action="store_true")
    args = parser.parse_args()
    print(json.dumps(accuracy() if args.accuracy else speed(args.n), indent=2))
