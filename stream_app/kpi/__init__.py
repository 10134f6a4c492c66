"""Pure KPI logic: state, reducers and formulas. Imports no faust, redis or prometheus."""
