"""Review before publishing (采集 → 审核 → 发布): proposals for the standard address library,
checked when submitted and published by the address authority through the same lifecycle
functions a direct edit uses."""
