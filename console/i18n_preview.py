"""The upload preview's words (merged into console.i18n.MESSAGES), Chinese first.

Placeholders in braces are filled in the browser (console/static/preview.js)."""

from __future__ import annotations

PREVIEW_MESSAGES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "preview_submit": "预览",
        "preview_help": (
            "选择文件后先预览：检查结果、推断的属性结构和前若干个要素的位置；确认无误再提交。"
        ),
        "preview_need_id": "请先填写图层标识，再预览。",
        "upload_progress": "上传进度",
        "process_progress": "处理进度",
        "processed_n": "正在处理：已读取 {n} 个要素…",
        "preview_title": "提交前预览",
        "preview_ready": "预览完成，尚未写入任何数据。",
        "preview_summary": (
            "文件共 {total} 个要素，{features} 个可写入，{invalid} 个有误；几何类型 {type}。"
        ),
        "preview_ok": "检查通过：提交后将写入 {n} 个要素。",
        "preview_blocked": "有 {count} 个要素有误：请修正文件后重新选择。修正前无法提交。",
        "preview_replace": "提交后将替换图层现有的 {archived} 个要素（旧要素保存在历史中）。",
        "preview_upsert": "提交后将更新 {updated} 个要素、新增 {inserted} 个要素。",
        "preview_renamed": "字段改名：{list}",
        "preview_map": "预览地图（前 {n} 个要素，落在提交后的位置）",
        "preview_schema": "推断的属性结构",
        "preview_errors": "错误报告",
        "preview_no_errors": "没有发现错误。",
        "preview_commit": "提交",
        "preview_cancel": "取消",
        "preview_cancelled": "已取消，未写入任何数据。",
        "preview_stale": "表单已更改，请重新预览后再提交。",
        "data_update_title": "更新数据（追加、替换、按键更新）",
        "err_DuplicateKeys": "文件中键属性有重复的值，未写入任何数据。",
        "err_TooManyFeatures": "文件中的要素太多，超过了服务的上限。",
        "err_ZipBomb": "压缩包内容异常（可能是压缩炸弹），已拒绝。",
    },
    "en": {
        "preview_submit": "Preview",
        "preview_help": "A file is previewed first: the checks, the inferred schema and where the "
        "first features land; commit once it looks right.",
        "preview_need_id": "Fill in the layer id first, then preview.",
        "upload_progress": "Upload progress",
        "process_progress": "Processing progress",
        "processed_n": "Processing: {n} features read…",
        "preview_title": "Preview before commit",
        "preview_ready": "Preview ready; nothing has been written.",
        "preview_summary": "The file holds {total} features: {features} can be written, "
        "{invalid} are invalid; geometry type {type}.",
        "preview_ok": "All checks passed: committing writes {n} features.",
        "preview_blocked": "{count} features are invalid: fix the file and choose it again. "
        "It cannot be committed until then.",
        "preview_replace": "Committing replaces the layer's {archived} features (kept in history).",
        "preview_upsert": "Committing updates {updated} features and adds {inserted}.",
        "preview_renamed": "Renamed fields: {list}",
        "preview_map": "Preview map (first {n} features, where they will land)",
        "preview_schema": "Inferred schema",
        "preview_errors": "Error report",
        "preview_no_errors": "No errors found.",
        "preview_commit": "Commit",
        "preview_cancel": "Cancel",
        "preview_cancelled": "Cancelled; nothing was written.",
        "preview_stale": "The form changed; preview again before committing.",
        "data_update_title": "Update the data (append, replace, upsert)",
        "err_DuplicateKeys": "The file holds a key value more than once; nothing was written.",
        "err_TooManyFeatures": "The file holds more features than the service accepts.",
        "err_ZipBomb": "The archive looks built to explode (a zip bomb); refused.",
    },
}
