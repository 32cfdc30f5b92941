"""``skgradunc reproduce`` from Python: one entry point for every protocol."""

from .config import check_config, make_out_folder, with_protocol_defaults

__all__ = ["run_protocol"]


def _runner(protocol):
    """The function that runs ``protocol`` (imported when asked for: each family's
    training code is heavy)."""
    if protocol == "uqgan":
        from .uqgan.protocol import run_uqgan_protocol
        return run_uqgan_protocol
    from .paper.protocol import run_paper_protocol
    return run_paper_protocol


def run_protocol(config, log=print):
    """Run (or resume) the protocol; write tables and the figure under ``config.out``.

    ``config.protocol`` picks the paper's protocol or UQGAN's benchmark
    (:func:`~skgradunc.experiments.uqgan.run_uqgan_protocol`).

    Parameters
    ----------
    config : ReproduceConfig
        The settings (checked by :func:`check_config`; None values take their
        protocol's defaults).
    log : callable, default=print
        Called with each progress message. With ``print``, the messages of the runs
        go through ``tqdm.write``, so that they do not break the progress bar.

    Returns
    -------
    results : dict
        The aggregated results ``{table: {row: {column: {score: {mean, sem, runs}}}}}``.

    Raises
    ------
    ValueError
        For a bad setting (:func:`check_config`), an output folder that cannot be
        created (:func:`make_out_folder`), a split that leaves a part without images,
        and for a cached run in ``config.out`` made with other settings (another thread
        count, another run's file), or corrupt, naming the file.
    OSError
        When a result or cache file cannot be written (a full disk), as ``cannot write
        <file>: <reason>``; the file is left as it was.

    Examples
    --------
    A bad setting is refused before anything is read or written:

    >>> from skgradunc.experiments import ReproduceConfig, run_protocol
    >>> run_protocol(ReproduceConfig(runs=0), log=lambda message: None)
    Traceback (most recent call last):
    ...
    ValueError: runs must be a positive integer, got 0

    One run of one training epoch on the embedded digits takes 20 s or more on two
    CPU cores, so it is not run here. ``sorted(results)`` is then ``['Calibration',
    'LASSO coefficients', 'Table 1', 'Table 2', 'Table 3']``, and ``out`` holds
    ``tables.md``, ``tables.csv``, ``tables.json``, ``config.json``, the figures
    ``figure2.png``, ``reliability.png`` and ``lasso_coefficients.png``, and
    ``runs/run-01/``, the cache a second call resumes from:

    >>> import tempfile
    >>> out = tempfile.mkdtemp()  # doctest: +SKIP
    >>> results = run_protocol(ReproduceConfig(runs=1, epochs=1, out=out),  # doctest: +SKIP
    ...                        log=lambda message: None)
    """
    check_config(config)
    config = with_protocol_defaults(config)
    make_out_folder(config.out)
    return _runner(config.protocol)(config, log=log)
