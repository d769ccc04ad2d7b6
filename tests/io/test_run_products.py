"""The cross-validation's predictions on disk keep their cost."""

from __future__ import annotations

import pandas as pd

from fluxbridge.io.run_products import cost_path, read_predictions, write_predictions


def test_predictions_round_trip_with_their_cost(tmp_path):
    df = pd.DataFrame({"site": ["A", "B"], "time": pd.to_datetime(["2010-01-01", "2010-01-02"]),
                       "observed": [1.0, 2.0], "site_only": [1.5, 2.5]})
    df.attrs["seconds_per_fold"] = {"site_only": 3.25, "rf": 1.0}
    path = tmp_path / "cv" / "predictions.csv"
    write_predictions(df, path)
    back = read_predictions(path)
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs["seconds_per_fold"] == {"site_only": 3.25, "rf": 1.0}
    cost_path(path).unlink()  # predictions written before the cost was kept
    assert read_predictions(path).attrs["seconds_per_fold"] == {}
