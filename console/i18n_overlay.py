"""The overlay page's and the console map's words (merged into console.i18n.MESSAGES), Chinese
first. Placeholders in braces are filled by console.js's fmt or by the templates."""

from __future__ import annotations

OVERLAY_MESSAGES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "nav_overlay": "叠加分析",
        "overlay_title": "叠加分析",
        "overlay_intro": (
            "选择两个您可读的图层：统计第一个图层中与第二个图层每个要素相交（或在其内、"
            "包含、在一定距离内）的要素，按第二个图层的要素分组，结果以表格和分级设色地图显示。"
        ),
        "overlay_layer": "被统计的图层",
        "overlay_other": "分组图层（按其要素汇总）",
        "overlay_choose": "请选择图层",
        "overlay_group_own": "本部门图层",
        "overlay_group_shared": "共享给我的及公开图层",
        "overlay_group_library": "地址库",
        "overlay_predicate": "空间关系",
        "predicate_intersects": "相交",
        "predicate_within": "在其内",
        "predicate_contains": "包含",
        "predicate_dwithin": "在距离内",
        "overlay_distance": "距离（米）",
        "overlay_aggregate": "汇总方式",
        "aggregate_count": "要素个数",
        "aggregate_sum": "求和",
        "aggregate_avg": "平均值",
        "aggregate_min": "最小值",
        "aggregate_max": "最大值",
        "overlay_property": "数值属性",
        "overlay_no_numeric": "（该图层没有数值属性）",
        "overlay_run": "开始分析",
        "overlay_running": "正在分析… 已用 {seconds} 秒",
        "overlay_done": "完成：{rows} 个分组，用时 {seconds} 秒。",
        "overlay_truncated": "结果较多，地图和表格只显示前 {rows} 个分组；下载可得到全部结果。",
        "overlay_result": "分析结果",
        "overlay_map": "分级设色地图",
        "overlay_legend": "图例",
        "overlay_no_value": "无值",
        "overlay_table": "结果表",
        "overlay_table_note": "显示前 {shown} 行，共 {rows} 行。",
        "overlay_download": "下载结果",
        "overlay_download_crs": "下载坐标系",
        "overlay_download_geojson": "下载 GeoJSON",
        "overlay_download_csv": "下载 CSV",
        "overlay_downloading": "正在准备下载…",
        "overlay_err_no_layer": "请选择被统计的图层和分组图层。",
        "overlay_err_no_property": (
            "“{aggregate}”需要一个数值属性；该图层没有数值属性，请改为统计要素个数。"
        ),
        "overlay_err_distance": "“在距离内”需要 0 到 50000 米之间的距离。",
        "overlay_err_unreadable": "图层“{layer}”不存在或您无权读取。",
        "overlay_err_bad": "分析条件有误：{message}",
        "map_title": "地图",
    },
    "en": {
        "nav_overlay": "Overlay",
        "overlay_title": "Overlay",
        "overlay_intro": (
            "Pick two layers you may read: the features of the first that intersect (or lie "
            "within, contain, or lie near) each feature of the second are counted per feature "
            "of the second, shown as a table and a choropleth map."
        ),
        "overlay_layer": "Layer counted",
        "overlay_other": "Grouping layer (one result per feature)",
        "overlay_choose": "Choose a layer",
        "overlay_group_own": "My department's layers",
        "overlay_group_shared": "Shared with me and public",
        "overlay_group_library": "Address library",
        "overlay_predicate": "Spatial relation",
        "predicate_intersects": "Intersects",
        "predicate_within": "Within",
        "predicate_contains": "Contains",
        "predicate_dwithin": "Within a distance",
        "overlay_distance": "Distance (metres)",
        "overlay_aggregate": "Aggregate",
        "aggregate_count": "Number of features",
        "aggregate_sum": "Sum",
        "aggregate_avg": "Average",
        "aggregate_min": "Minimum",
        "aggregate_max": "Maximum",
        "overlay_property": "Numeric attribute",
        "overlay_no_numeric": "(this layer has no numeric attribute)",
        "overlay_run": "Run",
        "overlay_running": "Running… {seconds} s",
        "overlay_done": "Done: {rows} groups in {seconds} s.",
        "overlay_truncated": (
            "Many results: the map and the table show the first {rows} groups; "
            "the download has them all."
        ),
        "overlay_result": "Result",
        "overlay_map": "Choropleth map",
        "overlay_legend": "Legend",
        "overlay_no_value": "No value",
        "overlay_table": "Result table",
        "overlay_table_note": "First {shown} of {rows} rows.",
        "overlay_download": "Download the result",
        "overlay_download_crs": "Download CRS",
        "overlay_download_geojson": "Download GeoJSON",
        "overlay_download_csv": "Download CSV",
        "overlay_downloading": "Preparing the download…",
        "overlay_err_no_layer": "Choose the layer to count and the grouping layer.",
        "overlay_err_no_property": (
            "“{aggregate}” needs a numeric attribute; this layer has none: count features instead."
        ),
        "overlay_err_distance": "“Within a distance” needs a distance between 0 and 50000 m.",
        "overlay_err_unreadable": "Layer “{layer}” does not exist or you may not read it.",
        "overlay_err_bad": "The overlay cannot run: {message}",
        "map_title": "Map",
    },
}
