"""The addresses page's words (merged into console.i18n.MESSAGES), Chinese first.

Placeholders in braces are filled in the browser (console.js `fmt`)."""

from __future__ import annotations

ADDRESS_MESSAGES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "nav_addresses": "地址",
        "addr_title": "地址",
        "addr_search": "查找地址",
        "addr_search_help": "输入地址、道路或小区名称（可用拼音或首字母），从建议中选择或按回车。",
        "addr_suggestions": "建议",
        "addr_results": "匹配结果",
        "addr_no_match": "没有找到匹配的地址。",
        "addr_choose": "在地图上显示",
        "addr_place": "所在区域",
        "addr_district": "区",
        "addr_subdistrict": "街道/镇",
        "addr_community": "社区/村",
        "addr_grid": "网格",
        "addr_none": "无",
        "addr_missing": "缺少{level}：{reason}",
        "addr_estimated": "{level}为估计范围：{reason}",
        "addr_map": "地图",
        "addr_map_help": "点击地图，查询该点最近的地址及所在区域（逆地理编码）。",
        "addr_reverse": "点击位置",
        "addr_distance": "最近地址（相距 {m} 米）：{standard}",
        "addr_no_address": "附近没有地址。",
        "level_room": "户室",
        "level_unit": "单元",
        "level_building": "楼栋",
        "level_compound": "小区",
        "level_house_number": "门牌",
        "level_road": "道路",
        "level_community": "社区",
        "level_subdistrict": "街道",
        "level_district": "区",
        "level_manual": "人工放置",
        "level_unmatched": "未匹配",
        "addr_score": "得分",
        "addr_confident": "可信",
        "addr_low": "低置信度",
        "batch_title": "批量地理编码",
        "batch_help": (
            "上传 CSV（UTF-8 或 GBK/GB18030 编码）或 Excel（.xlsx）文件，每行一个地址，"
            "最多 {max} 行。结果保留原有各列，并加上匹配列；低置信度的行以黄色标出，"
            "可从候选地址中选择，或在地图上点击放置（匹配级别记为“manual”，即人工放置）。"
        ),
        "batch_file": "文件",
        "batch_reading": "正在读取文件…",
        "batch_read": "已读取 {rows} 行（{columns} 列）。",
        "batch_column": "地址列",
        "batch_pick_column": "请选择哪一列是地址。",
        "batch_start": "开始地理编码",
        "batch_progress": "地理编码进度",
        "batch_running": "正在地理编码：{done} / {total} 行",
        "batch_done": (
            "完成：{total} 行，可信 {confident} 行，低置信度 {low} 行，未匹配 {unmatched} 行。"
        ),
        "batch_fixed": "已修正 {fixed} 行。",
        "batch_low_only": "只显示低置信度的行",
        "batch_row": "行号",
        "batch_fix": "修正",
        "batch_fix_row": "修正第 {row} 行",
        "batch_fix_title": "修正",
        "batch_candidates": "候选地址",
        "batch_use": "采用",
        "batch_no_candidates": "没有候选地址，请在地图上点击放置。",
        "batch_place": "在地图上点击放置",
        "batch_placing": "请在地图上点击该地址的位置。",
        "batch_fixed_row": "第 {row} 行已修正。",
        "batch_range": "第 {from}–{to} 行，共 {total} 行",
        "batch_download": "下载结果",
        "batch_download_csv": "下载 CSV",
        "batch_download_xlsx": "下载 Excel（.xlsx）",
        "batch_save": "另存为图层",
        "batch_save_help": "有位置的行保存为点图层（坐标系 EPSG:4326）；没有位置的 {n} 行不保存。",
        "batch_layer_id": "新图层标识（小写字母开头，可含数字和下划线）",
        "batch_save_submit": "保存为图层",
        "batch_saved": "已保存为图层 {id}，共 {n} 个要素。",
        "batch_open_layer": "打开图层",
        "err_UnsupportedMediaType_table": (
            "不支持这种文件类型。请上传 CSV（.csv、.txt）或 Excel（.xlsx）文件。"
        ),
        "err_EmptyFile": "文件是空的（没有表头或没有数据行），未做任何处理。",
        "err_NoAddressColumn": "表格中没有文字列，找不到地址列，未做任何处理。",
        "err_TooManyRows": "文件超过 {limit} 行，超出批量地理编码的上限；请拆分后分批处理。",
        "err_InvalidEncoding": "文件编码无法识别；请另存为 UTF-8 编码的 CSV 或 Excel（.xlsx）。",
        "err_InvalidFile_table": "文件无法读取（可能已损坏，或某行的列数多于表头），未做任何处理。",
        "err_no_location": "没有可保存的位置：请先完成地理编码。",
    },
    "en": {
        "nav_addresses": "Addresses",
        "addr_title": "Addresses",
        "addr_search": "Find an address",
        "addr_search_help": (
            "Type an address, road or compound (pinyin and initials work); pick a suggestion "
            "or press Enter."
        ),
        "addr_suggestions": "Suggestions",
        "addr_results": "Matches",
        "addr_no_match": "No address matches.",
        "addr_choose": "Show on the map",
        "addr_place": "Areas",
        "addr_district": "District",
        "addr_subdistrict": "Subdistrict/town",
        "addr_community": "Community/village",
        "addr_grid": "Grid",
        "addr_none": "none",
        "addr_missing": "No {level}: {reason}",
        "addr_estimated": "{level} outline estimated: {reason}",
        "addr_map": "Map",
        "addr_map_help": "Click the map for the nearest address and the areas there (reverse).",
        "addr_reverse": "Clicked point",
        "addr_distance": "Nearest address ({m} m away): {standard}",
        "addr_no_address": "No address nearby.",
        "level_room": "room",
        "level_unit": "unit",
        "level_building": "building",
        "level_compound": "compound",
        "level_house_number": "house number",
        "level_road": "road",
        "level_community": "community",
        "level_subdistrict": "subdistrict",
        "level_district": "district",
        "level_manual": "placed by hand",
        "level_unmatched": "no match",
        "addr_score": "Score",
        "addr_confident": "Confident",
        "addr_low": "Low confidence",
        "batch_title": "Batch geocoding",
        "batch_help": (
            "Upload a CSV (UTF-8 or GBK/GB18030) or Excel (.xlsx) file with one address a row, "
            "at most {max} rows. The result keeps your columns and adds the match columns; "
            "low-confidence rows are highlighted in yellow: pick a candidate or click the map "
            "(the level is then \u201cmanual\u201d, placed by hand)."
        ),
        "batch_file": "File",
        "batch_reading": "Reading the file…",
        "batch_read": "Read {rows} rows ({columns} columns).",
        "batch_column": "Address column",
        "batch_pick_column": "Pick the column that holds the addresses.",
        "batch_start": "Geocode",
        "batch_progress": "Geocoding progress",
        "batch_running": "Geocoding: {done} / {total} rows",
        "batch_done": (
            "Done: {total} rows, {confident} confident, {low} low confidence, "
            "{unmatched} unmatched."
        ),
        "batch_fixed": "{fixed} rows fixed.",
        "batch_low_only": "Only low-confidence rows",
        "batch_row": "Row",
        "batch_fix": "Fix",
        "batch_fix_row": "Fix row {row}",
        "batch_fix_title": "Fix",
        "batch_candidates": "Candidates",
        "batch_use": "Use",
        "batch_no_candidates": "No candidates; click the map to place it.",
        "batch_place": "Place on the map",
        "batch_placing": "Click the address's position on the map.",
        "batch_fixed_row": "Row {row} fixed.",
        "batch_range": "Rows {from}–{to} of {total}",
        "batch_download": "Download the result",
        "batch_download_csv": "Download CSV",
        "batch_download_xlsx": "Download Excel (.xlsx)",
        "batch_save": "Save as a layer",
        "batch_save_help": (
            "Rows with a position become a point layer (EPSG:4326); the {n} rows without one "
            "are left out."
        ),
        "batch_layer_id": "New layer id (a lowercase letter, then letters, digits, _)",
        "batch_save_submit": "Save as a layer",
        "batch_saved": "Saved as layer {id}: {n} features.",
        "batch_open_layer": "Open the layer",
        "err_UnsupportedMediaType_table": (
            "Unsupported file type: upload CSV (.csv, .txt) or Excel (.xlsx)."
        ),
        "err_EmptyFile": "The file is empty (no header or no rows); nothing was done.",
        "err_NoAddressColumn": (
            "No column holds text, so there is no address column; nothing was done."
        ),
        "err_TooManyRows": (
            "The file has more than {limit} rows, the batch geocoder's limit; split it."
        ),
        "err_InvalidEncoding": "The file's encoding is unknown; save it as UTF-8 CSV or as .xlsx.",
        "err_InvalidFile_table": (
            "The file cannot be read (damaged, or a row wider than the header); nothing was done."
        ),
        "err_no_location": "No positions to save: geocode first.",
    },
}
