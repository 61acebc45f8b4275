"""Looking inside runs and models: training curves (`curves`), gradient flow through time
(`gradflow`), gate saturation (`gates`), and their pictures (`pictures`, matplotlib: imported
only when one is drawn)."""
