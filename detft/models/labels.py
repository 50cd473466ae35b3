"""Dataset category ids <-> model class indices. The background class is handled here and only here:
torchvision R-CNNs reserve index 0 for it, so the K dataset classes are 1..K inside the model."""

from __future__ import annotations

from dataclasses import dataclass

from ..annotations.dataset import Category, Dataset


@dataclass(frozen=True)
class LabelMap:
    category_ids: tuple[int, ...]
    names: tuple[str, ...]
    background: bool = True  # True for R-CNN (index 0 = background); False for YOLO (0-based classes)

    @classmethod
    def from_dataset(cls, dataset: Dataset, background: bool = True) -> LabelMap:
        cats = dataset.sorted_categories()
        return cls(tuple(c.id for c in cats), tuple(c.name for c in cats), background)

    @property
    def num_classes(self) -> int:
        """What the model's classifier is sized for (K + 1 with background)."""
        return len(self.category_ids) + int(self.background)

    def to_model(self, category_id: int) -> int:
        return self.category_ids.index(category_id) + int(self.background)

    def model_to_category(self) -> list[int]:
        """Lookup table: model index -> category id (-1 for background)."""
        return ([-1] if self.background else []) + list(self.category_ids)

    def names_by_category(self) -> dict[int, str]:
        return dict(zip(self.category_ids, self.names))

    def categories(self) -> list[Category]:
        return [Category(i, n) for i, n in zip(self.category_ids, self.names)]

    def to_json(self) -> dict:
        return {"category_ids": list(self.category_ids), "names": list(self.names), "background": self.background}

    @classmethod
    def from_json(cls, d: dict) -> LabelMap:
        return cls(tuple(d["category_ids"]), tuple(d["names"]), bool(d["background"]))
