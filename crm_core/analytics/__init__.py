"""Analyses over the store: cohorts, RFM, clustering, CLV, churn, surveys, campaigns, funnels."""
