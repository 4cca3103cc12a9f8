"""Sources lienthong polls, for systems that cannot call it: the provincial change feed."""
