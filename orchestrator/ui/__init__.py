"""The web UI: template views over the selectors and services, and the live channel.

Views stay thin (parse the query, call a selector or service, render); what a
page lists is chosen by `filters.RunFilter` and paged by `cursors`; charts are
SVG computed in `charts`; live changes come from `live` over `consumers`.
"""
