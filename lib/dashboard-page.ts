export function renderDashboardPage(_options: { title?: string }): string { return "<!doctype html><title>stub</title>"; }
