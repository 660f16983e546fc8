"""Every agent in one place: the decision frame (``frame``, ``high_level``), the zone agents'
actions and observations (``cluster``) and their env (``decision_env``), the experts
(``expert``), the baselines (``baselines``), trained and exported policies (``trained``,
``exported``), public peers and submissions (``external``), and the grid2op wrapper
(``grid2op_agent``)."""
