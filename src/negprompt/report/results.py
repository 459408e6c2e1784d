"""A run's figures over seeds, typed: what `tables.aggregate` returns, metrics.json records and the report states."""

from __future__ import annotations

from dataclasses import dataclass, field

# One method on one set (or on average): {auroc, auroc_std, fpr95, fpr95_std, fpr95_openood, fpr95_openood_std}
# (metrics.FIGURES says what each figure is)
Figures = dict[str, float]


@dataclass
class Results:
    """Every method's figures, mean and population std over seeds (a stream method's over stream orders).

    ood: {set: {method: Figures}}; average: {method: Figures}, the mean over OOD sets per seed, then over seeds;
    id_top1: {method: {top1, top1_std}}; stream_orders: the orders a stream method's ± is over (None when no
    stream method ran); rank_agreement: Kendall's τ against the published averages (None until measured)."""

    ood: dict[str, dict[str, Figures]]
    average: dict[str, Figures]
    id_top1: dict[str, dict[str, float]] = field(default_factory=dict)
    stream_orders: list[int] | None = None
    rank_agreement: dict | None = None

    def to_dict(self) -> dict:
        """metrics.json's entry (the dict `aggregate` returned before it was typed): the optional keys only when set."""
        out = {"ood": self.ood, "average": self.average, "id_top1": self.id_top1}
        if self.stream_orders is not None:
            out["stream_orders"] = self.stream_orders
        if self.rank_agreement is not None:
            out["rank_agreement"] = self.rank_agreement
        return out
