"""Science values of synthetic ATL06 granules: arrays in, arrays out (used by readatl06.synth).

The surface is a fixed function of position (two ice-sheet domes, Dome-A-like in East Antarctica
and Greenland-like, on a low-lying base, plus smooth undulations), so that repeat passes and
crossing tracks see the same topography. Per-segment noise, fill values and quality flags are
random (numpy Generator passed in). Fill values are returned as NaN; the writer replaces them by
the dataset's _FillValue.
"""
import functools

import numpy as np

from . import orbitgeom as og

# (lat, lon, height m, radius deg) of the ice domes: Vialov-like profile h = H (1 - (d/L)^4/3)^3/8
_DOMES = ((-80.4, 77.4, 4000.0, 21.0), (72.6, -38.5, 3200.0, 9.0))
# (amplitude m, wavelength km, unit direction seed) of smooth undulations
_WAVES = ((35.0, 180.0, 0), (18.0, 60.0, 1), (8.0, 23.0, 2), (3.0, 7.0, 3), (1.2, 2.3, 4))
_DIRS = np.array([[0.48, -0.61, 0.63], [-0.72, 0.05, 0.69], [0.31, 0.93, -0.19],
                  [0.66, -0.28, -0.70], [-0.11, 0.57, 0.81]])
_DIRS = _DIRS / np.linalg.norm(_DIRS, axis=1, keepdims=True)
PULSES_PER_SEGMENT = 56.2842


def _unit(lat, lon):
    phi, lam = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], -1)


def surface_height(lat, lon):
    """Ice-sheet-like surface height (m above WGS84, 0..4000), a fixed function of position."""
    p = _unit(lat, lon)
    h = 150.0 + 120.0 * np.sin(3.0 * np.radians(np.asarray(lon))) * np.cos(np.radians(lat)) ** 2
    for dlat, dlon, hmax, radius in _DOMES:
        d = np.degrees(np.arccos(np.clip(p @ _unit(dlat, dlon), -1.0, 1.0)))
        x = np.clip(d / radius, 0.0, 1.0)
        h = np.maximum(h, hmax * (1.0 - x ** (4.0 / 3.0)) ** 0.375)
    for (amp, wavelength, k), direction in zip(_WAVES, _DIRS):
        h = h + amp * np.sin(p @ direction * og.R_EARTH / (wavelength * 1e3) + k)
    return np.clip(h, 0.0, 4000.0)


def geoid_height(lat, lon):
    """Smooth geoid-like undulation (m), -60..+60."""
    phi, lam = np.radians(lat), np.radians(lon)
    return (20.0 * np.sin(2 * phi) * np.cos(lam - 0.5) + 25.0 * np.cos(phi) ** 2 * np.sin(2 * lam + 1.0)
            - 12.0 * np.sin(phi) ** 2 + 8.0 * np.sin(3 * lam) * np.cos(phi))


@functools.lru_cache(maxsize=32)
def _box3_norm(width):
    k = np.ones(width) / width
    return float(np.sqrt(np.sum(np.convolve(np.convolve(k, k), k) ** 2)))


def smooth_noise(rng, n, length):
    """Unit-variance correlated noise of n samples, correlation length ~`length` samples
    (white noise through three running means, O(n))."""
    width = max(1, int(round(length)))
    x = rng.standard_normal(n + 3 * (width - 1))
    for _ in range(3):
        c = np.concatenate([[0.0], np.cumsum(x)])
        x = (c[width:] - c[:-width]) / width
    return x / _box3_norm(width)


def along_track(fn, x, *cols, step=50, angles=()):
    """``fn(*cols)`` for a quantity that varies over kilometres (sun, tides, geoid): evaluated at every
    ``step``-th point (and the last) and interpolated linearly in ``x`` (segment ids) in between.
    ``fn`` returns an array, a tuple or a dict of arrays; tuple positions in ``angles`` are degrees,
    interpolated unwrapped and wrapped back to -180..180."""
    x = np.asarray(x, np.float64)
    if x.size <= 2 * step:
        return fn(*cols)
    pick = np.unique(np.append(np.arange(0, x.size, step), x.size - 1))
    out = fn(*(np.asarray(c)[pick] for c in cols))

    def interp(v, angle=False):
        if angle:
            v = np.unwrap(v, period=360.0)
            return (np.interp(x, x[pick], v) + 180.0) % 360.0 - 180.0
        return np.interp(x, x[pick], v)
    if isinstance(out, dict):
        return {k: interp(v) for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(interp(v, i in angles) for i, v in enumerate(out))
    return interp(out)


def block_values(rng, n, block, values, probs):
    """Piecewise-constant flags (ATL09-rate, `block` segments long) drawn from values/probs."""
    nb = n // block + 1
    return np.repeat(rng.choice(np.asarray(values), size=nb, p=probs), block)[:n]


def geophysical_corrections(delta_time, lat, lon):
    """Tides (m), dynamic atmosphere correction and free-to-mean terms (plausible magnitudes)."""
    phi, lam = np.radians(lat), np.radians(lon)
    t = np.asarray(delta_time)
    m2 = 2 * np.pi * t / 44714.16 + 2 * lam
    k1 = 2 * np.pi * t / 86164.09 + lam
    s2 = np.sin(phi) ** 2
    return {
        "tide_ocean": 0.55 * np.cos(m2 + 0.7) * np.cos(phi) + 0.30 * np.sin(k1 + 0.2),
        "tide_load": -0.035 * np.cos(m2 + 0.9) - 0.01 * np.sin(k1),
        "tide_earth": (0.18 * np.cos(phi) ** 2 * np.cos(m2) + 0.09 * np.sin(2 * phi) * np.cos(k1)
                       - 0.06 * (1.5 * s2 - 0.5)),
        "tide_equilibrium": 0.012 * (1.5 * s2 - 0.5) * np.cos(2 * np.pi * t / 1180260.0),
        "tide_pole": 0.006 * np.sin(2 * phi) * np.cos(lam - 2 * np.pi * t / 37500000.0),
        "tide_earth_free2mean": 0.06029 - 0.180873 * s2,
        "geoid_free2mean": -0.2567 * (1.5 * s2 - 0.5),
        "dac": 0.06 * np.sin(3 * phi + 2 * lam + 2 * np.pi * t / 432000.0) + 0.02 * np.cos(lam - phi),
    }


def pair_rows(rng, n_dense, p_fail_l, p_fail_r, gap_prob=0.01, gap_block=25):
    """Row selection of a beam pair: (keep, valid_l, valid_r) over n_dense segments.

    A row exists when at least one beam of the pair has a fit (as in ATL06); cloud gaps remove
    whole blocks of both beams."""
    gap = np.repeat(rng.random(n_dense // gap_block + 1) < gap_prob, gap_block)[:n_dense]
    fail_l = (rng.random(n_dense) < p_fail_l) | gap
    fail_r = (rng.random(n_dense) < p_fail_r) | gap
    keep = ~(fail_l & fail_r)
    return keep, ~fail_l[keep], ~fail_r[keep]


def fit_statistics(rng, valid, strong, bad_fraction):
    """Fit-quality fields of one beam; rows flagged bad break one ATL06 quality criterion.

    Returns (fields, quality_summary)."""
    m = valid.size
    bad = valid & (rng.random(m) < bad_fraction)
    reason = rng.integers(0, 4, m)
    photons = 10 + rng.poisson(35.0 if strong else 8.0, m)
    sprd = np.minimum(rng.lognormal(np.log(0.17), 0.5, m), 0.95)
    sprd = np.where(bad & (reason == 1), rng.uniform(1.0, 5.0, m), sprd)
    sigma_mean = np.minimum(sprd / np.sqrt(photons) * rng.uniform(0.8, 1.6, m), 0.9)
    fpb_sigma = np.minimum(sigma_mean * rng.uniform(0.8, 1.6, m), 0.9)
    hsig = np.maximum(sigma_mean, fpb_sigma)
    hsig = np.where(bad & (reason == 0), rng.uniform(1.0, 4.0, m), hsig)
    snr_sig = np.where(rng.random(m) < 0.1, rng.uniform(0.0, 0.015, m), 0.0)
    snr_sig = np.where(bad & (reason == 2), rng.uniform(0.02, 0.3, m), snr_sig)
    sss = np.where(rng.random(m) < 0.08, 1, 0)
    sss = np.where(bad & (reason == 3), 2, sss)
    fpb_med = rng.normal(0.005, 0.04, m)
    nan = np.where(valid, 1.0, np.nan)
    f = {
        "h_li_sigma": hsig * nan,
        "fit_statistics/h_robust_sprd": sprd * nan,
        "fit_statistics/sigma_h_mean": sigma_mean * nan,
        "fit_statistics/n_fit_photons": np.where(valid, photons, 0),
        "fit_statistics/snr_significance": snr_sig * nan,
        "fit_statistics/signal_selection_source": np.where(valid, sss, 3).astype(np.int8),
        "fit_statistics/signal_selection_source_status":
            np.where(valid, 0, rng.choice([3, 4], m, p=[0.3, 0.7])).astype(np.int8),
        "fit_statistics/snr": rng.lognormal(np.log(150.0 if strong else 60.0), 0.8, m) * nan,
        "fit_statistics/h_rms_misfit": sprd * rng.uniform(0.9, 1.3, m) * nan,
        "fit_statistics/h_expected_rms": (0.1 + rng.exponential(0.01, m)) * nan,
        "fit_statistics/w_surface_window_final":
            np.where(rng.random(m) < 0.85, 3.0, 3.0 + rng.exponential(4.0, m)) * nan,
        "fit_statistics/n_seg_pulses": PULSES_PER_SEGMENT + rng.normal(0.0, 2e-4, m),
        "fit_statistics/dh_fit_dx_sigma": (sigma_mean / 8.0 + 5e-4) * nan,
        "bias_correction/fpb_med_corr": fpb_med * nan,
        "bias_correction/fpb_med_corr_sigma": fpb_sigma * nan,
        "bias_correction/fpb_mean_corr": rng.normal(-0.002, 0.001, m) * nan,
        "bias_correction/fpb_mean_corr_sigma": (fpb_sigma * rng.uniform(0.5, 0.9, m)) * nan,
        "bias_correction/fpb_n_corr": photons * rng.uniform(0.9, 1.05, m) * nan,
        "bias_correction/med_r_fit": (fpb_med + rng.normal(0.0, 0.01, m)) * nan,
        "bias_correction/tx_mean_corr": -np.abs(rng.normal(1e-4, 5e-5, m)) * nan,
        "bias_correction/tx_med_corr": -np.abs(rng.normal(0.007, 0.004, m)) * nan,
    }
    return f, (~valid | bad).astype(np.int8)


def circular_mean_lon(index, lon, n):
    """Mean longitude (degrees) of the groups `index` (0..n-1), safe across the antimeridian."""
    z = np.exp(1j * np.radians(lon))
    zm = np.bincount(index, z.real, n) + 1j * np.bincount(index, z.imag, n)
    return np.degrees(np.angle(zm))


def residual_histogram(rng, layout, dense_idx, valid, delta_time, lat, lon, x_atc, segment_id,
                       photons, sprd, bins_006):
    """residual_histogram group of one beam: one row per 200-m block (10 segments) with fits."""
    block = dense_idx // 10
    vb = block[valid]
    ublocks, first = np.unique(vb, return_index=True)
    inv = np.searchsorted(ublocks, vb)
    n = ublocks.size
    cnt = np.bincount(inv, minlength=n).astype(np.float64)

    def mean(a):
        return np.bincount(inv, weights=a[valid], minlength=n) / np.maximum(cnt, 1)
    slot = np.arange(vb.size) - first[inv]
    ids = np.zeros((n, 10), np.int32)
    ids[inv, slot] = segment_id[valid]
    bins = np.asarray(bins_006, np.float32) if layout != "001" else \
        np.linspace(-4.995, 4.995, 1000).astype(np.float32)
    # counts: Poisson draws of a Gaussian residual distribution (width = robust spread) over the
    # bins around zero, each row holding the photons of its segments
    nph = np.bincount(inv, weights=photons[valid], minlength=n)
    sig = np.maximum(np.bincount(inv, weights=sprd[valid], minlength=n) / np.maximum(cnt, 1), 0.05)
    c0 = int(np.searchsorted(bins, 0.0))
    lo, hi = max(c0 - 100, 0), min(c0 + 100, bins.size)
    top = bins[lo:hi].astype(np.float64)
    bottom = np.concatenate([[top[0] - (top[1] - top[0])], top[:-1]])
    z = 0.5 * (top + bottom)[None, :] / sig[:, None]
    pdf = np.exp(-0.5 * z ** 2) / (np.sqrt(2 * np.pi) * sig[:, None]) * (top - bottom)[None, :]
    count = np.zeros((n, bins.size), np.int32)
    count[:, lo:hi] = rng.poisson(nph[:, None] * pdf)
    return {
        "delta_time": mean(delta_time), "lat_mean": mean(lat),
        "lon_mean": circular_mean_lon(inv, lon[valid], n),
        "x_atc_mean": mean(x_atc), "segment_id_list": ids, "count": count,
        "pulse_count": cnt * PULSES_PER_SEGMENT, "bckgrd_per_m": rng.uniform(0.0, 0.005, n),
        "bckgrd_per_bin": rng.uniform(0.0, 0.005, n),
        "bin_top_h": bins, "dh": bins, "ds_segment_id": np.arange(1, 11, dtype=np.int8),
    }


def segment_quality(delta_time, lat, lon, segment_id, sss_dense, first_record):
    """segment_quality group of one beam: one record per 20-m segment of the granule span."""
    failed = sss_dense == 3
    return {
        "delta_time": delta_time, "reference_pt_lat": lat, "reference_pt_lon": lon,
        "segment_id": segment_id.astype(np.int32), "signal_selection_source": sss_dense.astype(np.int8),
        "record_number": (first_record + np.arange(segment_id.size)).astype(np.int32),
        "signal_selection_status/signal_selection_status_all": np.where(failed, 3, 0).astype(np.int8),
        "signal_selection_status/signal_selection_status_backup": np.where(failed, 4, 0).astype(np.int8),
        "signal_selection_status/signal_selection_status_confident":
            np.where(failed, 3, np.where(sss_dense == 1, 1, 0)).astype(np.int8),
    }


def qa_records(delta_time, lat, lon, sss_dense, block=50):
    """quality_assessment/gtx group of one beam: one record per `block` segments."""
    b = np.arange(delta_time.size) // block
    n = b.max() + 1 if b.size else 0
    c = np.maximum(np.bincount(b, minlength=n), 1)
    out = {"delta_time": np.bincount(b, delta_time, n) / c, "lat_mean": np.bincount(b, lat, n) / c,
           "lon_mean": circular_mean_lon(b, lon, n)}
    for k in range(4):
        out[f"signal_selection_source_fraction_{k}"] = np.bincount(b, (sss_dense == k).astype(float), n) / c
    return out
