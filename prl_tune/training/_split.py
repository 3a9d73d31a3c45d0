"""The built-in tasks' training/validation/test split: its fractions and the stratified draw."""

from __future__ import annotations

import numpy as np

from prl_tune._checks import ArgumentValueError, real

# The split never depends on the trial's seed, so every trial is scored on the same samples.
SPLIT_SEED = 0


def check_fractions(val_fraction: object, test_fraction: object) -> tuple[float, float]:
    """``(val_fraction, test_fraction)`` as floats: ``val_fraction`` in ``(0, 1)``,
    ``test_fraction`` in ``[0, 1)``, and their sum ``< 1`` (training samples remain).

    Raises:
        ValueError, TypeError: A fraction out of its range, or a sum ``>= 1`` (named
            ``test_fraction``).
    """
    value = real("val_fraction", val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    test = real("test_fraction", test_fraction, low=0.0, high=1.0, high_open=True)
    if value + test >= 1.0:
        raise ArgumentValueError(
            "test_fraction",
            f"must leave training samples (val_fraction + test_fraction < 1) but got "
            f"{test_fraction!r} with val_fraction {val_fraction!r}.",
        )
    return value, test


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample indices of the training, validation and test splits (stratified, fixed seed).

    The test split is drawn first, then the validation split from the rest, each as a share of
    all samples (scikit-learn's ``train_test_split``, ``random_state`` :data:`SPLIT_SEED`).
    Without a test split (``test_fraction = 0``) the test indices are empty. The returned arrays
    are read-only.

    Raises:
        ValueError: The fractions leave a split with fewer samples than classes.
    """
    from sklearn.model_selection import train_test_split

    rest = np.arange(labels.shape[0])
    test = rest[:0]
    try:
        if test_fraction > 0:
            rest, test = train_test_split(
                rest, test_size=test_fraction, stratify=labels, random_state=SPLIT_SEED
            )
        train, val = train_test_split(
            rest,
            test_size=val_fraction / (1.0 - test_fraction),
            stratify=labels[rest],
            random_state=SPLIT_SEED,
        )
    except ValueError as error:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave too few "
            f"samples per class: {error}"
        ) from error
    for array in (train, val, test):
        array.setflags(write=False)
    return train, val, test
